import { readFileSync } from 'node:fs';

/** One Dockerfile instruction, continuation lines joined. */
export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  args: Record<string, string>;
  stages: Stage[];
}

/** A small Dockerfile parser: enough for the static checks (no heredocs, no escape directive). */
export function parseDockerfile(file: string): Dockerfile {
  const lines = readFileSync(file, 'utf8').split('\n');
  const instructions: Instruction[] = [];
  let buffer = '';
  let start = 0;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!buffer && (line === '' || line.startsWith('#'))) return;
    if (buffer && line.startsWith('#')) return;
    if (!buffer) start = i + 1;
    buffer += `${line.replace(/\\$/, '').trim()} `;
    if (line.endsWith('\\')) return;
    const [keyword, ...rest] = buffer.trim().split(/\s+/);
    instructions.push({ keyword: keyword.toUpperCase(), args: rest.join(' '), line: start });
    buffer = '';
  });

  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const [image, as, name] = ins.args.replace(/--platform=\S+\s+/, '').split(/\s+/);
      const resolved = image.replace(/\$\{?(\w+)\}?/g, (_, v: string) => args[v] ?? `$${v}`);
      stages.push({ image: resolved, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length === 0 && ins.keyword === 'ARG') {
      const [k, v = ''] = ins.args.split('=');
      args[k] = v;
    } else if (stages.length) {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  return { args, stages };
}

/** The JSON array of an exec-form instruction (CMD/ENTRYPOINT/HEALTHCHECK CMD), or null for shell form. */
export function execForm(args: string): string[] | null {
  try {
    const parsed = JSON.parse(args);
    return Array.isArray(parsed) && parsed.every((p) => typeof p === 'string') ? parsed : null;
  } catch {
    return null;
  }
}

/** Sources of a COPY/ADD without --from (paths in the build context), flags removed. */
export function contextSources(ins: Instruction): string[] {
  const parts = ins.args.split(/\s+/);
  if (parts.some((p) => p.startsWith('--from='))) return [];
  const paths = parts.filter((p) => !p.startsWith('--'));
  return paths.slice(0, -1);
}

/** Whether a .dockerignore excludes `file` (patterns with `*`, `**`, `?` and `!` re-includes). */
export function dockerignored(patterns: string[], file: string): boolean {
  let excluded = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const regex = new RegExp(
      `^${pattern
        .split('/')
        .map((seg) => (seg === '**' ? '.*' : seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
        .join('/')
        .replace(/\.\*\//g, '(?:.*/)?')}(?:/.*)?$`,
    );
    if (regex.test(file)) excluded = !negate;
  }
  return excluded;
}

export const readDockerignore = (file: string): string[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
