import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const SOURCE = resolve(__dirname, '../../../tools/kafka-mock/mock-cluster.c');

/** Compiles tools/kafka-mock/mock-cluster.c once per source version; a missing gcc or librdkafka-dev throws. */
function buildMockCluster(): string {
  const hash = createHash('sha256').update(readFileSync(SOURCE)).digest('hex').slice(0, 12);
  const binary = join(tmpdir(), `cloudretail-kafka-mock-${hash}`);
  if (existsSync(binary)) return binary;
  const partial = `${binary}.${process.pid}`;
  try {
    execFileSync('gcc', [SOURCE, '-o', partial, '-lrdkafka'], { stdio: 'pipe' });
  } catch (error) {
    const detail = (error as { stderr?: Buffer }).stderr?.toString() || (error as Error).message;
    throw new Error(`cannot build the Kafka mock cluster (needs gcc and librdkafka-dev): ${detail}`, { cause: error });
  }
  renameSync(partial, binary); // atomic, so parallel test workers never run a half-written binary
  return binary;
}

export interface KafkaMock {
  brokers: string[];
  stop(): Promise<void>;
}

/**
 * Starts librdkafka's mock cluster (3 brokers) in a child process. It speaks enough Kafka for
 * kafkajs produce, fetch and consumer groups; topics are auto-created. createTopics and
 * idempotent producers do not work against it (its metadata names controller 0, which does not exist).
 */
export async function startKafkaMock(brokerCount = 3): Promise<KafkaMock> {
  const child = spawn(buildMockCluster(), [String(brokerCount)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const bootstrap = await new Promise<string>((ok, fail) => {
    createInterface({ input: child.stdout }).once('line', ok);
    child.once('error', fail);
    child.once('exit', (code) => fail(new Error(`kafka mock cluster exited with ${code}: ${stderr}`)));
  });
  return {
    brokers: bootstrap.split(','),
    async stop() {
      child.stdin.end(); // the launcher exits when its stdin closes
      await exited;
    },
  };
}
