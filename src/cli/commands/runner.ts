import { colours } from '../output.ts';
import { describeError, type CliIO } from '../session.ts';

/** Runs one command's work: any error becomes "FAILED" and a message on stderr, and the exit code. */
export type Runner = (work: (io: CliIO) => Promise<unknown>) => Promise<void>;

export function makeRunner(io: CliIO, setExit: (code: number) => void): Runner {
  return async (work) => {
    try {
      await work(io);
      setExit(0);
    } catch (err) {
      const code = (err as { exitCode?: unknown }).exitCode;
      io.err.write(`${colours(io).red('FAILED')}\n${describeError(err, io.env.KILN_API)}\n`);
      setExit(typeof code === 'number' ? code : 1);
    }
  };
}
