import { randomInt } from 'node:crypto';

// Kiln's own word lists; the shape is upstream's RandomRouteGenerator's.
const ADJECTIVES = ['brave', 'calm', 'daring', 'eager', 'fancy', 'gentle', 'happy', 'jolly', 'kind', 'lively', 'merry', 'nimble', 'proud', 'quiet', 'shy', 'silly', 'swift', 'tidy', 'witty', 'zany'];
const NOUNS = ['badger', 'bear', 'cheetah', 'dolphin', 'eagle', 'ferret', 'gecko', 'heron', 'ibex', 'jackal', 'koala', 'lemur', 'meerkat', 'newt', 'otter', 'panda', 'quokka', 'rabbit', 'tapir', 'wombat'];

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/**
 * The random part of a `random-route: true` host, shaped as upstream's RandomRouteGenerator shapes it:
 * `<adjective>-<noun>-<two different letters>`. The server (manifest apply) and the `kiln push` CLI (which
 * maps routes itself) both use it, so a random route looks the same whichever made it.
 */
export function randomWords(): string {
  const first = randomInt(LETTERS.length);
  const second = (first + 1 + randomInt(LETTERS.length - 1)) % LETTERS.length;
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${LETTERS[first]}${LETTERS[second]}`;
}

/** The host of a random route for an app: `<app name>-<adjective>-<noun>-<two letters>`, lower case. */
export function randomRouteHost(appName: string): string {
  return `${appName}-${randomWords()}`.toLowerCase();
}
