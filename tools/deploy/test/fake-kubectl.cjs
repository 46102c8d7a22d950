#!/usr/bin/env node
/**
 * A stand-in for kubectl, put on PATH by the tests. It answers from a script: a JSON list of
 * {args, stdout?, stderr?, exit?} in the order the calls must come (FAKE_KUBECTL_SCRIPT). Each
 * call is appended to FAKE_KUBECTL_LOG; a call that is not the next one scripted fails like an
 * unknown command does (exit 1), so an unexpected kubectl call fails the test. Output and exit
 * codes in the scripts are what kubectl prints (`-o name` → `kind.group/name`, errors on stderr
 * with exit 1).
 */
const fs = require('node:fs');

const script = JSON.parse(fs.readFileSync(process.env.FAKE_KUBECTL_SCRIPT, 'utf8'));
const log = process.env.FAKE_KUBECTL_LOG;
const args = process.argv.slice(2).join(' ');
const done = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0;
fs.appendFileSync(log, `${args}\n`);
const next = script[done];
if (!next || next.args !== args) {
  process.stderr.write(`fake kubectl: call ${done + 1} was "${args}", the script expects ${next ? `"${next.args}"` : 'no more calls'}\n`);
  process.exit(1);
}
if (next.stdout) process.stdout.write(next.stdout);
if (next.stderr) process.stderr.write(next.stderr);
process.exit(next.exit ?? 0);
