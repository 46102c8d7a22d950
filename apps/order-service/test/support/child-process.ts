import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

export interface ChildService {
  proc: ChildProcess;
  url: string;
  exit: Promise<number | null>;
  /** SIGKILL: no shutdown hooks, no draining, exactly like a crashed pod. */
  kill9: () => Promise<void>;
  /** SIGTERM and wait for the graceful exit. */
  stop: () => Promise<void>;
}

/**
 * order-service as a real process (`node --import tsx apps/order-service/src/main.ts`), so a test
 * can kill -9 it. Resolves once it logs `listening` with its port.
 */
export const spawnOrderService = (env: Record<string, string>, options: { startTimeoutMs?: number } = {}) => spawnService('order-service', env, options);

/** A service of the saga as a real process (run from its sources, as order-service above). */
export function spawnService(app: 'order-service' | 'inventory-service' | 'payment-service', env: Record<string, string>, { startTimeoutMs = 60_000 } = {}): Promise<ChildService> {
  const proc = spawn(process.execPath, ['--import', 'tsx', `apps/${app}/src/main.ts`], {
    cwd: path.join(__dirname, '../../../..'),
    env: { ...process.env, ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const ended = async (signal: NodeJS.Signals) => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exit;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${app} did not start in time`));
    }, startTimeoutMs);
    let buffer = '';
    proc.stdout!.on('data', (chunk) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        let entry: { msg?: string; port?: number };
        try {
          entry = JSON.parse(line);
        } catch {
          continue;
        }
        if (entry.msg === 'listening' && entry.port) {
          clearTimeout(timer);
          resolve({ proc, url: `http://127.0.0.1:${entry.port}`, exit, kill9: () => ended('SIGKILL'), stop: () => ended('SIGTERM') });
        }
      }
    });
    exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${app} exited early with ${code}`));
    });
  });
}
