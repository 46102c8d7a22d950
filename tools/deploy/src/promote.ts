/**
 * `promote`: the one way an image reaches a cluster. It writes the digests CI pushed into the
 * environment's overlay (kustomize `images:` with `digest:`) and commits that, on the branch
 * Argo CD syncs the environment from (env/<environment>, infrastructure/argocd). Nothing else
 * in the checkout changes, so the promotion commit is exactly "these apps now run these digests".
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isMap, isSeq, parseDocument, type YAMLMap } from 'yaml';
import { type Environment, ENVIRONMENTS } from './args';

/** app → image reference, by digest (`registry/app@sha256:<64 hex>`) or, for a revert to a seed release, by tag. */
export type Digests = Record<string, string>;

const REF = /^(?<name>[a-z0-9][\w.-]*(?::\d+)?(?:\/[\w.-]+)+)(?:@(?<digest>sha256:[0-9a-f]{64})|:(?<tag>[\w][\w.-]{0,127}))$/;

export class PromoteError extends Error {}

/** Parses one reference; throws naming the app when it is neither `name@sha256:…` nor `name:tag`. */
export function parseRef(app: string, ref: string): { name: string; digest?: string; tag?: string } {
  const m = REF.exec(ref);
  if (!m?.groups) throw new PromoteError(`${app}: "${ref}" is not an image reference by digest (<registry>/<app>@sha256:<64 hex>)`);
  return { name: m.groups.name, digest: m.groups.digest, tag: m.groups.tag };
}

/** A digests JSON file, or every *.json of a directory merged (one file per build job). */
export function readDigests(file: string): Digests {
  if (!existsSync(file)) throw new PromoteError(`--digests ${file}: no such file or directory`);
  const files = statSync(file).isDirectory()
    ? readdirSync(file)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => path.join(file, f))
    : [file];
  const merged: Digests = {};
  for (const f of files) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(f, 'utf8'));
    } catch (error) {
      throw new PromoteError(`--digests ${f}: not JSON (${(error as Error).message})`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new PromoteError(`--digests ${f}: expected {"<app>": "<image>@sha256:<hex>"}`);
    for (const [app, ref] of Object.entries(parsed as Record<string, unknown>)) {
      if (typeof ref !== 'string') throw new PromoteError(`--digests ${f}: ${app} is not a string`);
      parseRef(app, ref);
      if (merged[app] && merged[app] !== ref) throw new PromoteError(`--digests: ${app} has two different images (${merged[app]}, ${ref})`);
      merged[app] = ref;
    }
  }
  if (!Object.keys(merged).length) throw new PromoteError(`--digests ${file}: no images`);
  return merged;
}

const refOf = (entry: YAMLMap): string => {
  const name = String(entry.get('newName') ?? entry.get('name'));
  const digest = entry.get('digest');
  return digest ? `${name}@${digest}` : `${name}:${entry.get('newTag') ?? 'latest'}`;
};

/**
 * Sets the images of `digests` in a kustomization's `images:`. An app's entries are the one named
 * after it and, for the gateway's service-switch colour, `<app>-green`. Comments and every other
 * line stay as they are.
 */
export function applyDigests(text: string, digests: Digests): { text: string; previous: Digests; changed: string[] } {
  const doc = parseDocument(text);
  const images = doc.get('images');
  if (!isSeq(images)) throw new PromoteError('the overlay has no images: list');
  const previous: Digests = {};
  const changed: string[] = [];
  for (const [app, ref] of Object.entries(digests)) {
    const { name, digest, tag } = parseRef(app, ref);
    const entries = images.items.filter((e): e is YAMLMap => isMap(e) && (e.get('name') === app || e.get('name') === `${app}-green`));
    if (!entries.length) throw new PromoteError(`${app}: the overlay has no images entry named ${app}`);
    for (const entry of entries) {
      const before = refOf(entry);
      if (entry.get('name') === app) previous[app] = before;
      entry.set('newName', name);
      if (digest) {
        entry.delete('newTag');
        entry.set('digest', digest);
      } else {
        entry.delete('digest');
        entry.set('newTag', tag);
      }
      if (refOf(entry) !== before && !changed.includes(app)) changed.push(app);
    }
  }
  return { text: doc.toString(), previous, changed };
}

/** Who commits: a CI runner has no git identity; the person behind the release is in the message and the audit. */
const IDENTITY = ['-c', 'user.name=cloudretail-deploy', '-c', 'user.email=deploy@cloudretail.invalid'];

export interface Git {
  run(args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }>;
}

export function execGit(cwd: string): Git {
  return {
    run: (args) =>
      new Promise((resolve) => {
        execFile('git', args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => resolve({ ok: !error, stdout: String(stdout), stderr: String(stderr || error?.message || '') }));
      }),
  };
}

export interface PromoteOptions {
  env: Environment;
  digests: Digests;
  repoDir: string;
  source?: string;
  branch?: string;
  push: boolean;
  remote: string;
  previousOut?: string;
  dryRun: boolean;
  actor: string;
}

export interface PromoteResult {
  overlay: string;
  previous: Digests;
  changed: string[];
  commit?: string;
}

/** Prints and records every git command (actions) and, in a dry run, runs only the reads. */
export async function promote(o: PromoteOptions, git: Git, log: (line: string) => void, actions: string[]): Promise<PromoteResult> {
  const overlayDir = ENVIRONMENTS[o.env].overlay;
  if (!overlayDir) throw new PromoteError(`--env ${o.env} has no overlay of its own; name a region`);
  const overlay = path.join(overlayDir, 'kustomization.yaml');
  const step = async (args: string[], { read = false, allowFail = false } = {}) => {
    const shown = `git ${args.join(' ')}`;
    actions.push(shown);
    if (o.dryRun && !read) {
      log(`[dry-run] ${shown}`);
      return { ok: true, stdout: '', stderr: '' };
    }
    const result = await git.run(args);
    if (!result.ok && !allowFail) throw new PromoteError(`${shown} failed: ${result.stderr.trim()}`);
    return result;
  };

  if (o.branch) {
    // A dry run shows the path of an existing branch (it does not ask the remote).
    const exists = (await step(['ls-remote', '--exit-code', '--heads', o.remote, o.branch], { allowFail: true })).ok;
    if (exists) {
      await step(['fetch', o.remote, `+refs/heads/${o.branch}:refs/remotes/${o.remote}/${o.branch}`]);
      await step(['checkout', '-B', o.branch, `${o.remote}/${o.branch}`]);
      // The built commit's manifests come along; the branch's own promotions stay (main never edits image lines).
      if (o.source) await step([...IDENTITY, 'merge', '--no-ff', '--no-edit', '-m', `Merge ${o.source} into ${o.branch}`, o.source]);
    } else {
      await step(['checkout', '-B', o.branch, o.source ?? 'HEAD']);
    }
  }

  const file = path.join(o.repoDir, overlay);
  const { text, previous, changed } = applyDigests(readFileSync(file, 'utf8'), o.digests);
  for (const app of Object.keys(o.digests)) log(`${o.env} ${app}: ${previous[app]} -> ${o.digests[app]}${changed.includes(app) ? '' : ' (unchanged)'}`);
  // Written in a dry run too: a local file (what a revert would promote), not a change to Git or a cluster.
  if (o.previousOut) writeFileSync(o.previousOut, `${JSON.stringify(previous, null, 2)}\n`);
  if (!changed.length) {
    log(`${o.env} already runs these images: nothing to commit`);
    return { overlay, previous, changed };
  }
  if (o.dryRun) log(`[dry-run] write ${overlay}`);
  else writeFileSync(file, text);

  const message = `promote ${o.env}: ${changed.map((app) => `${app}@${o.digests[app].split('@')[1] ?? o.digests[app].split(':').pop()}`).join(', ')}\n\nby ${o.actor}`;
  await step(['add', '--', overlay]);
  await step([...IDENTITY, 'commit', '--no-verify', '-m', message, '--', overlay]);
  const commit = o.dryRun ? undefined : (await step(['rev-parse', 'HEAD'], { read: true })).stdout.trim();
  if (o.push) await step(['push', o.remote, `HEAD:refs/heads/${o.branch}`]);
  return { overlay, previous, changed, commit };
}
