import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { KilnError } from '../domain/errors.ts';
import { stage, stagingErrorText } from './buildpack-runner.ts';
import { extractTarGz } from './tarball.ts';

/**
 * Kiln's buildpack runner as a workload of its own (`kiln stage-job`): what a staging Job runs in the stack image
 * on Kubernetes. It downloads the staging input Kiln prepared (`package/`, `buildpacks/<i>/`, `staging.json`) from
 * KILN_STAGING_INPUT_URL, runs the buildpacks exactly as Kiln does locally (buildpack-runner.ts), uploads the
 * droplet to KILN_STAGING_DROPLET_URL (both short-lived signed URLs) and prints its outcome as the last line of its
 * log, which Kiln reads: `KILN_STAGING_RESULT <json>` or `KILN_STAGING_ERROR <json>`. Every other line is
 * buildpack output and becomes an STG log line.
 */

export const RESULT_PREFIX = 'KILN_STAGING_RESULT ';
export const ERROR_PREFIX = 'KILN_STAGING_ERROR ';

export const StagingInputSchema = z.object({
  buildpacks: z.array(z.object({ name: z.string(), dir: z.string() })),
  skipDetect: z.boolean(),
  env: z.record(z.string(), z.string()),
  stack: z.string().optional(),
  timeoutMs: z.number().optional(),
});
export type StagingInput = z.infer<typeof StagingInputSchema>;

export const StagingResultSchema = z.object({
  processTypes: z.record(z.string(), z.string()),
  startCommand: z.string(),
  detectedBuildpack: z.string(),
  buildpacks: z.array(z.object({ name: z.string(), buildpackName: z.string().nullable(), version: z.string().nullable(), detectOutput: z.string().nullable() })),
});
export const StagingErrorSchema = z.object({ message: z.string() });

export async function runStageJob(env: Record<string, string | undefined> = process.env): Promise<number> {
  const inputUrl = env.KILN_STAGING_INPUT_URL;
  const dropletUrl = env.KILN_STAGING_DROPLET_URL;
  if (!inputUrl || !dropletUrl) {
    console.error('kiln stage-job needs KILN_STAGING_INPUT_URL and KILN_STAGING_DROPLET_URL');
    return 2;
  }
  const work = await fs.mkdtemp(path.join(env.TMPDIR ?? os.tmpdir(), 'kiln-stage-'));
  try {
    const inputFile = path.join(work, 'input.tgz');
    const res = await fetch(inputUrl);
    if (!res.ok || !res.body) throw new KilnError('StagingError', `downloading the staging input failed: HTTP ${res.status}`);
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(inputFile));
    const input = path.join(work, 'input');
    await extractTarGz(inputFile, input, { kind: 'droplet' });
    const settings = StagingInputSchema.parse(JSON.parse(await fs.readFile(path.join(input, 'staging.json'), 'utf8')));
    const dropletPath = path.join(work, 'droplet.tgz');
    const result = await stage({
      appDir: path.join(input, 'package'),
      buildpacks: settings.buildpacks.map((b) => ({ name: b.name, dir: path.join(input, b.dir) })),
      skipDetect: settings.skipDetect,
      workDir: path.join(work, 'build'),
      cacheDir: path.join(work, 'cache'),
      dropletPath,
      env: settings.env,
      ...(settings.stack ? { stack: settings.stack } : {}),
      ...(settings.timeoutMs !== undefined ? { timeoutMs: settings.timeoutMs } : {}),
      onOutput: (line, stream) => (stream === 'stderr' ? console.error(line) : console.log(line)),
    });
    const size = (await fs.stat(dropletPath)).size;
    const up = await fetch(dropletUrl, {
      method: 'PUT',
      headers: { 'content-type': 'application/gzip', 'content-length': String(size) },
      body: Readable.toWeb(createReadStream(dropletPath)) as unknown as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    if (!up.ok) throw new KilnError('StagingError', `uploading the droplet failed: HTTP ${up.status}`);
    const outcome = { processTypes: result.processTypes, startCommand: result.startCommand, detectedBuildpack: result.detectedBuildpack, buildpacks: result.buildpacks };
    console.log(`${RESULT_PREFIX}${JSON.stringify(outcome)}`);
    return 0;
  } catch (err) {
    // Cloud Controller's build error text ("<Name> - <message>"), recorded on the build as it is.
    console.log(`${ERROR_PREFIX}${JSON.stringify({ message: stagingErrorText(err) })}`);
    return 1;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
