import readline from 'node:readline/promises';
import Table from 'cli-table3';
import pc from 'picocolors';
import type { CliIO } from './session.ts';

/**
 * How the CLI prints: cf-style tables (no borders, bold headers, columns three spaces apart), key/value
 * blocks, state colours, JSON for scripts, a spinner for waits. Colour only on a terminal without NO_COLOR.
 */

export function colours(io: CliIO): ReturnType<typeof pc.createColors> {
  return pc.createColors(io.out.isTTY === true && !io.env.NO_COLOR && io.env.TERM !== 'dumb');
}

const NO_BORDER = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '',
  right: '', 'right-mid': '', middle: '   ',
};

/** An aligned table with a header row, as cf prints lists. Trailing blanks are trimmed from every line. */
export function table(io: CliIO, head: string[], rows: Array<Array<string | number>>): string {
  const c = colours(io);
  const t = new Table({ head: head.map((h) => c.bold(h)), chars: NO_BORDER, style: { 'padding-left': 0, 'padding-right': 0, head: [], border: [], compact: true } });
  for (const row of rows) t.push(row.map((cell) => String(cell)));
  return `${t.toString().split('\n').map((line) => line.replace(/\s+$/, '')).join('\n')}\n`;
}

/** `key:   value` lines with the values aligned, as `cf app` prints its summary. */
export function keyValues(io: CliIO, pairs: Array<[string, string]>): string {
  const c = colours(io);
  const width = Math.max(...pairs.map(([k]) => k.length)) + 2;
  return pairs.map(([k, v]) => `${c.bold(`${k}:`.padEnd(width))}${v}`).join('\n') + '\n';
}

/** Upper-case CF states in a colour that reads at a glance. */
export function state(io: CliIO, value: string): string {
  const c = colours(io);
  const lower = value.toLowerCase();
  if (['running', 'started', 'succeeded', 'staged', 'ready', 'complete'].includes(lower)) return c.green(lower);
  if (['crashed', 'failed', 'down'].includes(lower)) return c.red(lower);
  if (['stopped', 'canceling'].includes(lower)) return c.dim(lower);
  return c.yellow(lower);
}

export function printJson(io: CliIO, value: unknown): void {
  io.out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** "Getting apps in org default / space dev as admin..." */
export function status(io: CliIO, text: string): void {
  io.out.write(`${text}\n`);
}

export function ok(io: CliIO): void {
  io.out.write(`${colours(io).green('OK')}\n`);
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * Runs `work` with a spinner and its label on a terminal; elsewhere (pipes, CI) prints the label once so
 * logs still show what was waited for. Always clears its line before returning.
 */
export async function withSpinner<T>(io: CliIO, label: string, work: (update: (label: string) => void) => Promise<T>): Promise<T> {
  const tty = io.out.isTTY === true && io.env.TERM !== 'dumb';
  if (!tty) {
    io.out.write(`${label}\n`);
    return work(() => {});
  }
  let text = label;
  let frame = 0;
  const draw = () => io.out.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${text}`);
  draw();
  const timer = setInterval(draw, 80);
  try {
    return await work((next) => {
      text = next;
    });
  } finally {
    clearInterval(timer);
    io.out.write('\r\x1b[2K');
  }
}

/** A yes/no question on a terminal; without one, the answer is no (scripts pass -f). */
export async function confirm(io: CliIO, question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question(`${question} [yN]: `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Reads a password from the terminal without echoing it. */
export async function promptSecret(question: string): Promise<string> {
  const stdin = process.stdin;
  process.stdout.write(question);
  stdin.setRawMode?.(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let value = '';
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          stdin.setRawMode?.(false);
          stdin.pause();
          stdin.off('data', onData);
          process.stdout.write('\n');
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          stdin.setRawMode?.(false);
          stdin.off('data', onData);
          reject(new Error('interrupted'));
          return;
        }
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Plain-text prompt on a terminal. */
export async function prompt(question: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** Bytes the way cf prints memory: 12.3M, 1G. */
export function formatMem(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${+(bytes / 1024 ** 3).toFixed(1)}G`;
  if (bytes >= 1024 ** 2) return `${+(bytes / 1024 ** 2).toFixed(1)}M`;
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(1)}K`;
  return `${bytes}B`;
}

/** `-m 256M`/`1G`/`512` (megabytes) as cf reads sizes. */
export function parseSizeMb(value: string, flag: string): number {
  const m = /^(\d+)\s*(M|MB|G|GB)?$/i.exec(value.trim());
  if (!m) throw new Error(`Invalid value for ${flag}: '${value}'. Use a size like 256M or 1G.`);
  const n = Number(m[1]);
  return /^g/i.test(m[2] ?? '') ? n * 1024 : n;
}
