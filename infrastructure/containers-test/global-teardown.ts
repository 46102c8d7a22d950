import { rmSync } from 'node:fs';
import { DOCKER, STATE_FILE, docker, readState, removeLabelled, sh } from './docker';

/** Stops the registry and removes what the proofs left: labelled containers and the pushed images. */
export default async function globalTeardown(): Promise<void> {
  removeLabelled();
  try {
    const { registry } = readState();
    const refs = docker('images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', `reference=${registry}/*`).split('\n').filter((r) => r && !r.endsWith(':<none>'));
    const digests = docker('images', '--digests', '--format', '{{.Repository}}@{{.Digest}}', '--filter', `reference=${registry}/*`).split('\n').filter((r) => r && !r.endsWith('@<none>'));
    if (refs.length || digests.length) sh(DOCKER, ['rmi', ...refs, ...digests], { allowFail: true });
  } catch {
    // No state: global-setup failed before writing it; nothing was pushed.
  }
  const registry = globalThis.containersRegistry;
  registry?.child.kill('SIGTERM');
  if (registry) rmSync(registry.dir, { recursive: true, force: true });
  rmSync(STATE_FILE, { force: true });
}
