/*
 * A throwaway Kafka cluster for tests: librdkafka's built-in mock brokers (test.mock.num.brokers).
 * Prints the bootstrap servers on stdout, then runs until stdin closes or SIGTERM.
 * Build: gcc mock-cluster.c -o mock-cluster -lrdkafka   Usage: ./mock-cluster [num-brokers]
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
  char errstr[512], buf[256];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "test.mock.num.brokers", argc > 1 ? argv[1] : "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "%s\n", errstr);
    return 1;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!rk) {
    fprintf(stderr, "%s\n", errstr);
    return 1;
  }
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(rd_kafka_handle_mock_cluster(rk)));
  fflush(stdout);
  /* The parent keeps our stdin open while it needs the cluster; SIGTERM's default action also ends us. */
  while (read(STDIN_FILENO, buf, sizeof buf) > 0) {}
  rd_kafka_destroy(rk);
  return 0;
}
