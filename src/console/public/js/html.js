// Preact with htm's tagged templates: JSX-like markup that runs in the browser as written, with no build step.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);
