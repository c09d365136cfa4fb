/**
 * The push progress display: one line per phase with its duration. On a terminal the running phase shows
 * as a live line that log output scrolls above; elsewhere (CI, pipes) only finished phases are printed, as
 * plain text without escape codes.
 */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean | undefined;
}

const CLEAR_LINE = '\r\x1b[2K';

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

export class Progress {
  private current: { label: string; started: number } | null = null;
  private readonly tty: boolean;
  private readonly startedAt: number;

  constructor(
    private readonly out: ProgressStream,
    private readonly now: () => number = Date.now,
  ) {
    this.tty = out.isTTY === true && process.env.TERM !== 'dumb' && !process.env.NO_COLOR;
    this.startedAt = now();
  }

  /** Starts a phase ("Uploading app files"); the previous one must have ended. */
  start(label: string): void {
    if (this.current) this.done();
    this.current = { label, started: this.now() };
    this.drawLive();
  }

  /** Ends the running phase successfully, with an optional detail ("12 files, 3.4 KB"). */
  done(detail?: string): void {
    this.finish('ok', detail);
  }

  fail(detail?: string): void {
    this.finish('FAILED', detail);
  }

  /** Prints a line of output (staging logs, notes) above the live phase line. */
  line(text: string): void {
    if (this.tty && this.current) this.out.write(CLEAR_LINE);
    this.out.write(`${text}\n`);
    this.drawLive();
  }

  /** Total time since the display was created. */
  elapsed(): string {
    return formatDuration(this.now() - this.startedAt);
  }

  private finish(status: 'ok' | 'FAILED', detail?: string): void {
    if (!this.current) return;
    const { label, started } = this.current;
    this.current = null;
    const took = formatDuration(this.now() - started);
    const mark = this.tty ? (status === 'ok' ? '\x1b[32m✓\x1b[0m' : '\x1b[31m✗\x1b[0m') : status === 'ok' ? '[ok]' : '[FAILED]';
    const text = `${mark} ${label}${detail ? `: ${detail}` : ''} (${took})`;
    this.out.write(`${this.tty ? CLEAR_LINE : ''}${text}\n`);
  }

  private drawLive(): void {
    if (this.tty && this.current) this.out.write(`${CLEAR_LINE}… ${this.current.label}`);
  }
}
