#!/usr/bin/env node
// The image scan gate: reads Trivy JSON reports (`trivy image --format json`) and fails (exit 1)
// when any finding is HIGH or CRITICAL *and* has a fixed version to move to; everything else is
// reported, not blocking (an unfixed CVE cannot be fixed by rebuilding).
//
//   node tools/build-images/scan-gate.mjs [--image NAME] report.json [...]
//
// Exit 0: pass, 1: blocked, 2: a report that is not Trivy JSON (never a silent pass).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const BLOCKING = new Set(['HIGH', 'CRITICAL']);

/** Splits one Trivy report's findings into what blocks a push and what is only reported. */
export function judge(report) {
  if (!report || typeof report !== 'object' || report.SchemaVersion !== 2 || !('ArtifactName' in report)) {
    throw new Error('not a Trivy JSON report (SchemaVersion 2 with ArtifactName expected)');
  }
  const blocking = [];
  const reported = [];
  for (const result of report.Results ?? []) {
    for (const v of result.Vulnerabilities ?? []) {
      const finding = { id: v.VulnerabilityID, pkg: v.PkgName, installed: v.InstalledVersion, fixed: v.FixedVersion || '', severity: v.Severity, target: result.Target };
      (BLOCKING.has(v.Severity) && finding.fixed ? blocking : reported).push(finding);
    }
  }
  return { artifact: report.ArtifactName, blocking, reported };
}

const line = (f) => `  ${f.severity.padEnd(8)} ${f.id} ${f.pkg} ${f.installed}${f.fixed ? ` → ${f.fixed}` : ' (no fix)'}`;

function main() {
  const { values, positionals } = parseArgs({ options: { image: { type: 'string' } }, allowPositionals: true });
  if (!positionals.length) {
    console.error('scan-gate: usage: scan-gate.mjs [--image NAME] report.json [...]');
    return 2;
  }
  let blocked = false;
  for (const file of positionals) {
    let verdict;
    try {
      verdict = judge(JSON.parse(readFileSync(file, 'utf8')));
    } catch (error) {
      console.error(`scan-gate: ${file}: ${error.message}`);
      return 2;
    }
    const name = values.image ?? verdict.artifact;
    const counts = Object.entries(Object.groupBy(verdict.reported, (f) => f.severity)).map(([s, l]) => `${l.length} ${s}`).join(', ');
    if (verdict.blocking.length) {
      blocked = true;
      console.error(`scan-gate: ${name}: BLOCKED by ${verdict.blocking.length} fixable HIGH/CRITICAL finding(s):`);
      for (const f of verdict.blocking) console.error(line(f));
    } else {
      console.log(`scan-gate: ${name}: passed (no fixable HIGH/CRITICAL finding)`);
    }
    if (verdict.reported.length) console.log(`scan-gate: ${name}: reported, not blocking: ${counts}`);
  }
  return blocked ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main();
