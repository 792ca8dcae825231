// KafkaJS against a broker: create a topic, produce keyed records with headers (gzip and
// uncompressed), then read metadata and offsets back through the admin client.
// Usage: node produce.js BOOTSTRAP TOPIC BASE_TIMESTAMP_MS QUERY_TIMESTAMP_MS
// Prints one line, `RESULT {json}`, for tests/integration/test_kafkajs.py to check.
"use strict";

const { Kafka, CompressionTypes, Partitioners, logLevel } = require("kafkajs");

const PARTITIONS = 3;
const RECORDS_PER_SEND = 20;

async function main() {
  const [bootstrap, topic, baseTimestamp, queryTimestamp] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: "odradek-kafkajs-test",
    brokers: [bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 3 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const result = {};
  try {
    result.created = await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    // KafkaJS answers false (not an error) when the topic already exists.
    result.createdAgain = await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
    });

    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    result.sent = [];
    result.sends = [];
    try {
      for (const [name, compression] of [
        ["gzip", CompressionTypes.GZIP],
        ["none", CompressionTypes.None],
      ]) {
        const messages = [];
        for (let i = 0; i < RECORDS_PER_SEND; i++) {
          const n = result.sent.length;
          const message = {
            key: `order-${n % 7}`,
            value: `kafkajs ${name} record ${n} `.repeat(8),
            headers: { seq: String(n), client: "kafkajs" },
            timestamp: String(Number(baseTimestamp) + 1000 * n),
          };
          messages.push(message);
          result.sent.push(message);
        }
        const metadata = await producer.send({ topic, compression, acks: -1, messages });
        result.sends.push({ compression: name, metadata });
      }
    } finally {
      await producer.disconnect();
    }

    result.metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    result.offsets = await admin.fetchTopicOffsets(topic);
    result.offsetsByTimestamp = await admin.fetchTopicOffsetsByTimestamp(
      topic,
      Number(queryTimestamp),
    );
  } finally {
    await admin.disconnect();
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
