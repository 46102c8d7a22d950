import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ProcessGroup, deadline, exited, killTree, probe, waitUntil } from './processes';

export const NGINX_BIN = process.env.NGINX_BIN ?? '/usr/sbin/nginx';

export interface NginxOptions {
  port: number;
  upstreams: number[];
  /** Attempts per request across upstream servers (proxy_next_upstream_tries). */
  tries?: number;
  /**
   * Keep client connections alive. Off by default: a reload makes the old worker close its idle
   * client connections, which races with a client sending its next request on one (ECONNRESET).
   * That is an artefact of reconfiguring nginx by reload; Kubernetes Services and ingress-nginx
   * change endpoints without one. Connections from nginx to the replicas are always kept alive.
   */
  clientKeepAlive?: boolean;
}

/**
 * The load balancer's configuration. `generation` is served at /__generation so a reload can be
 * confirmed: once fresh connections see the new number, the new workers (and upstream list) serve.
 */
export function nginxConf({ port, upstreams, tries = 3, clientKeepAlive = false }: NginxOptions, dir: string, generation: number): string {
  const temp = (name: string) => path.join(dir, 'temp', name);
  // An old worker drains for at most 2 s after a reload or stop, so none outlives its master.
  return `worker_processes 1;
worker_shutdown_timeout 2s;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_timeout ${clientKeepAlive ? '65s' : '0'};
  client_body_temp_path ${temp('client')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};

  upstream app {
${upstreams.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 32;
  }

  server {
    listen 127.0.0.1:${port};
    location = /__generation { return 200 "${generation}"; }
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      # A replica that refuses the connection, times out or says it is going away (502/503) is
      # skipped for the next one: idempotent requests never surface those to the client.
      proxy_next_upstream error timeout http_502 http_503;
      proxy_next_upstream_tries ${tries};
      proxy_connect_timeout 1s;
      proxy_read_timeout 10s;
    }
  }
}
`;
}

export interface Nginx {
  url: string;
  upstreams: () => number[];
  /** Rewrites the upstream list, reloads (SIGHUP) and waits until the new workers serve. */
  setUpstreams: (ports: number[]) => Promise<void>;
  stop: () => Promise<void>;
}

/** Runs nginx in the foreground as a child (a temp prefix dir, its own pid and error log). */
export async function startNginx(group: ProcessGroup, options: NginxOptions): Promise<Nginx> {
  if (!existsSync(NGINX_BIN)) throw new Error(`nginx not found at ${NGINX_BIN} (apt-get install nginx, or set NGINX_BIN)`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'zd-nginx-'));
  // Workers run as an unprivileged user when nginx starts as root: they must reach the temp dirs.
  chmodSync(dir, 0o755);
  mkdirSync(path.join(dir, 'temp'));
  let generation = 1;
  let upstreams = options.upstreams;
  const conf = path.join(dir, 'nginx.conf');
  const errorLog = path.join(dir, 'error.log');
  writeFileSync(conf, nginxConf({ ...options, upstreams }, dir, generation));

  const { child, output } = group.spawn(NGINX_BIN, ['-p', dir, '-c', conf, '-e', errorLog, '-g', `daemon off; pid ${path.join(dir, 'nginx.pid')};`], {
    PATH: process.env.PATH,
  });
  const url = `http://127.0.0.1:${options.port}`;
  const log = () => `${output()}\n${existsSync(errorLog) ? readFileSync(errorLog, 'utf8').slice(-2000) : ''}`;
  const servesGeneration = async (n: number) => {
    if (child.exitCode !== null) throw new Error(`nginx exited:\n${log()}`);
    return (await probe(`${url}/__generation`, 1000)).body === String(n);
  };
  await waitUntil(() => servesGeneration(generation), { timeoutMs: 5000, describe: () => `nginx did not start:\n${log()}` });

  return {
    url,
    upstreams: () => upstreams,
    async setUpstreams(ports) {
      if (!ports.length) throw new Error('an upstream needs at least one server');
      upstreams = ports;
      generation += 1;
      writeFileSync(conf, nginxConf({ ...options, upstreams }, dir, generation));
      child.kill('SIGHUP');
      // Several consecutive fresh connections on the new generation: the old worker has stopped accepting.
      let streak = 0;
      const target = generation;
      await waitUntil(async () => (streak = (await servesGeneration(target)) ? streak + 1 : 0) >= 3, {
        timeoutMs: 5000,
        intervalMs: 20,
        describe: () => `nginx did not reload to generation ${target}:\n${log()}`,
      });
    },
    async stop() {
      child.kill('SIGQUIT');
      if ((await Promise.race([exited(child), deadline(4000)])) === 'timeout') killTree(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
