import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import type { Report } from './strategies';
import type { Thresholds } from './verify';

export interface Actor {
  name: string;
  /** Where the name came from: a CI system, the git config, or the login user. */
  source: 'DEPLOY_ACTOR' | 'github-actions' | 'gitlab-ci' | 'ci' | 'git' | 'USER' | 'unknown';
}

/**
 * Who runs the deploy. A CI actor wins over the machine's git identity (a CI runner's git config
 * names a bot, not the person who triggered the run).
 */
export function detectActor(env: NodeJS.ProcessEnv, gitUser: () => string | undefined = readGitUser): Actor {
  if (env.DEPLOY_ACTOR) return { name: env.DEPLOY_ACTOR, source: 'DEPLOY_ACTOR' };
  if (env.GITHUB_ACTIONS === 'true' && env.GITHUB_ACTOR) return { name: env.GITHUB_ACTOR, source: 'github-actions' };
  if (env.GITLAB_CI && env.GITLAB_USER_LOGIN) return { name: env.GITLAB_USER_LOGIN, source: 'gitlab-ci' };
  if (env.CI && env.CI_ACTOR) return { name: env.CI_ACTOR, source: 'ci' };
  const git = gitUser();
  if (git) return { name: git, source: 'git' };
  if (env.USER) return { name: env.USER, source: 'USER' };
  return { name: 'unknown', source: 'unknown' };
}

function readGitUser(): string | undefined {
  const read = (key: string) => {
    try {
      return execFileSync('git', ['config', key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '';
    }
  };
  const [name, email] = [read('user.name'), read('user.email')];
  if (!name && !email) return undefined;
  return name && email ? `${name} <${email}>` : name || email;
}

/** One line of deploy-audit.jsonl. */
export interface AuditRecord {
  id: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  actor: Actor;
  command: string;
  env: string;
  namespace: string;
  app: string;
  fromVersion: string | null;
  toVersion: string | null;
  dryRun: boolean;
  outcome: Report['outcome'] | 'error';
  reasons: string[];
  verification: { thresholds?: Thresholds; windowMs?: number; source?: string; checks: Report['checks'] };
  /** kubectl commands in the order they were run (or, in a dry run, would be). */
  actions: string[];
  error?: string;
}

export function auditRecord(fields: Omit<AuditRecord, 'id' | 'durationMs' | 'finishedAt'> & { finishedAt?: Date }): AuditRecord {
  const finished = fields.finishedAt ?? new Date();
  return { id: randomUUID(), ...fields, finishedAt: finished.toISOString(), durationMs: finished.getTime() - Date.parse(fields.startedAt) };
}

/** Appends one JSON line (append-only: earlier records are never rewritten). */
export function appendAudit(file: string, record: AuditRecord): void {
  appendFileSync(file, `${JSON.stringify(record)}\n`);
}
