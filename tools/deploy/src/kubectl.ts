import { execFile } from 'node:child_process';

export interface KubectlResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Everything the deploy commands do to a cluster goes through this, so tests and --dry-run replace it. */
export interface Kubectl {
  run(args: string[]): Promise<KubectlResult>;
  /** Set by dryRunKubectl: waits that poll the cluster show one round and move on. */
  dryRun?: boolean;
}

/** `kubectl a b 'c d'` — how a command is printed (dry-run, logs, audit). */
export function formatCommand(args: string[]): string {
  return ['kubectl', ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The real thing: runs the kubectl binary (KUBECTL, default `kubectl` on PATH) with the current kube context. */
export function execKubectl({ bin = process.env.KUBECTL || 'kubectl', timeoutMs = 15 * 60_000 }: { bin?: string; timeoutMs?: number } = {}): Kubectl {
  return {
    run: (args) =>
      new Promise((resolve) => {
        execFile(bin, args, { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
          resolve({ ok: !error, stdout: String(stdout), stderr: String(stderr || (error && !('code' in error && typeof error.code === 'number') ? error.message : '')) });
        });
      }),
  };
}

/** A runner that records each command and answers from `respond` (tests). */
export function recordingKubectl(respond: (args: string[]) => Partial<KubectlResult> | undefined = () => undefined): Kubectl & { commands: string[] } {
  const commands: string[] = [];
  return {
    commands,
    async run(args) {
      commands.push(formatCommand(args));
      return { ok: true, stdout: '', stderr: '', ...respond(args) };
    },
  };
}

/** What a read answers in a dry run, so the plan can be followed to the end without a cluster. */
export function dryRunAnswer(args: string[]): string {
  const joined = args.join(' ');
  if (joined.includes('{.spec.selector.version}')) return 'blue';
  if (joined.includes('{.spec.template.spec.containers[0].image}')) return '<current-image>';
  if (args[0] === 'get' && args[1] === 'deployment' && args.includes('json')) {
    return JSON.stringify({ spec: { replicas: 2, template: { spec: { containers: [{ image: '<current-image>' }] } } }, status: { readyReplicas: 2, updatedReplicas: 2 } });
  }
  if (args[0] === 'get' && args[1] === 'pods') {
    return JSON.stringify({
      items: [
        {
          metadata: { name: '<pod>', labels: { 'rollouts-pod-template-hash': '<stable-hash>' } },
          spec: { containers: [{ name: '<container>', ports: [{ name: 'http', containerPort: '<port>' }] }] },
          status: { conditions: [{ type: 'Ready', status: 'True' }] },
        },
      ],
    });
  }
  // Every app of the staging and production overlays is an Argo Rollout.
  if (args[0] === 'get' && args[1] === 'rollout.argoproj.io' && args.includes('name')) return `rollout.argoproj.io/${args[2]}`;
  if (args[0] === 'get' && args[1] === 'rollout.argoproj.io') {
    return JSON.stringify({
      spec: { replicas: 2 },
      status: { phase: 'Healthy', stableRS: '<stable-hash>', currentPodHash: '<stable-hash>', replicas: 2, readyReplicas: 2, availableReplicas: 2, updatedReplicas: 2 },
    });
  }
  return '';
}

/**
 * --dry-run: prints every command in order (reads included, marked as such) and runs none. Reads
 * answer with placeholders (active colour blue, two replicas, one pod, no traffic), so the plan
 * shown is the success path.
 */
export function dryRunKubectl(print: (line: string) => void): Kubectl & { commands: string[] } {
  const commands: string[] = [];
  return {
    commands,
    dryRun: true,
    async run(args) {
      const command = formatCommand(args);
      commands.push(command);
      print(`[dry-run] ${command}`);
      return { ok: true, stdout: dryRunAnswer(args), stderr: '' };
    },
  };
}
