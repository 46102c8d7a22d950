import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A deadline for Promise.race that does not keep the process (or a Jest worker) alive by itself. */
export const deadline = (ms: number) => new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref());

/** The last lines a child wrote, for the error message when it dies or never gets ready. */
function tail(child: ChildProcess, max = 40): () => string {
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString().split('\n').filter(Boolean));
    lines.splice(0, Math.max(0, lines.length - max));
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => lines.join('\n');
}

/**
 * Every child process a scenario starts, so that one call kills whatever is still alive — in
 * `afterAll` and `finally`, also after a failure half-way through a scenario.
 */
export class ProcessGroup {
  private readonly children = new Set<ChildProcess>();

  spawn(command: string, args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string } {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return { child, output: tail(child) };
  }

  /** SIGKILLs every child still running (and their own children: nginx workers) and waits (bounded) until they are gone. */
  async killAll(): Promise<void> {
    const alive = [...this.children];
    alive.forEach(killTree);
    await Promise.all(alive.map((child) => Promise.race([exited(child), deadline(2000)])));
  }
}

/** Direct children of a process (Linux /proc), e.g. nginx's workers, which a SIGKILLed master would orphan. */
function childPids(pid: number | undefined): number[] {
  if (!pid) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** SIGKILL a child and its direct children. */
export function killTree(child: ChildProcess): void {
  for (const pid of childPids(child.pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  child.kill('SIGKILL');
}

/** Resolves with the exit code (or the signal's name) once the child has exited. */
export function exited(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? String(child.signalCode));
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? String(signal))));
}

/** One GET on a fresh connection (no keep-alive): status, or 0 when the connection failed. */
export function probe(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '' }));
  });
}

/** Polls until `check` holds, failing after `timeoutMs` with `describe()` in the message. */
export async function waitUntil(check: () => Promise<boolean>, { timeoutMs, intervalMs = 100, describe }: { timeoutMs: number; intervalMs?: number; describe: () => string }) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(intervalMs);
  }
  throw new Error(`Timed out after ${timeoutMs} ms: ${describe()}`);
}

export interface Replica {
  name: string;
  port: number;
  url: string;
  child: ChildProcess;
  output: () => string;
}

export interface ReplicaOptions {
  name: string;
  /** The built entry point, e.g. dist/apps/product-service/main.js. */
  main: string;
  port: number;
  env: Record<string, string>;
  readyTimeoutMs?: number;
}

/** Starts `node main.js` and waits until GET /health/ready answers 200. */
export async function startReplica(group: ProcessGroup, { name, main, port, env, readyTimeoutMs = 45_000 }: ReplicaOptions): Promise<Replica> {
  const { child, output } = group.spawn(process.execPath, [main], { PATH: process.env.PATH, ...env, PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  let exitedEarly = false;
  child.once('exit', () => (exitedEarly = true));
  await waitUntil(
    async () => {
      if (exitedEarly) throw new Error(`${name} exited before it was ready:\n${output()}`);
      return (await probe(`${url}/health/ready`, 1000)).status === 200;
    },
    { timeoutMs: readyTimeoutMs, describe: () => `${name} on port ${port} never became ready:\n${output()}` },
  );
  return { name, port, url, child, output };
}

/** SIGTERM, then wait for the graceful exit (SIGKILL after `timeoutMs`). Resolves with the exit code. */
export async function stopReplica(replica: Replica, timeoutMs = 15_000): Promise<number | string> {
  replica.child.kill('SIGTERM');
  const code = await Promise.race([exited(replica.child), deadline(timeoutMs)]);
  if (code !== 'timeout') return code;
  replica.child.kill('SIGKILL');
  await exited(replica.child);
  return 'killed after timeout';
}
