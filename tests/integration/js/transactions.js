// KafkaJS transactions against a broker: one transaction committed (with the group offsets it
// sends) and one aborted, each over every partition of a topic.
// Usage: node transactions.js BOOTSTRAP TOPIC TRANSACTIONAL_ID GROUP
// Prints one line, `RESULT {json}`, for tests/integration/test_transactions_kafkajs.py to check
// with a read_committed confluent-kafka consumer.
"use strict";

const { Kafka, Partitioners, logLevel } = require("kafkajs");

const PARTITIONS = 3;
const RECORDS_PER_PARTITION = 4;

function messages(outcome) {
  const out = [];
  for (let p = 0; p < PARTITIONS; p++) {
    for (let i = 0; i < RECORDS_PER_PARTITION; i++) {
      out.push({ partition: p, key: `key-${p}`, value: `${outcome}-${p}-${i}` });
    }
  }
  return out;
}

async function main() {
  const [bootstrap, topic, transactionalId, group] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: "odradek-kafkajs-transactions",
    brokers: [bootstrap],
    logLevel: logLevel.ERROR,
    retry: { retries: 5 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const result = { committed: [], aborted: [] };
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    const producer = kafka.producer({
      transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    try {
      const committing = await producer.transaction();
      const sent = messages("committed");
      result.committedMetadata = await committing.send({ topic, messages: sent });
      await committing.sendOffsets({
        consumerGroupId: group,
        topics: [{ topic, partitions: [{ partition: 0, offset: "7" }] }],
      });
      await committing.commit();
      result.committed = sent.map((m) => m.value);

      const aborting = await producer.transaction();
      const dropped = messages("aborted");
      result.abortedMetadata = await aborting.send({ topic, messages: dropped });
      await aborting.sendOffsets({
        consumerGroupId: group,
        topics: [{ topic, partitions: [{ partition: 0, offset: "11" }] }],
      });
      await aborting.abort();
      result.aborted = dropped.map((m) => m.value);
    } finally {
      await producer.disconnect();
    }
  } finally {
    await admin.disconnect();
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
