// A KafkaJS consumer group of two members (two clients, "kjs-a" and "kjs-b") reads a topic,
// committing each message as soon as it is processed (autoCommit off, commitOffsets per
// message). Once the two share the partitions it optionally produces PRODUCE_COUNT keyed
// records itself, waits until EXPECTED distinct keys have been consumed, lingers so that a
// redelivery would show, and disconnects both members (each sends LeaveGroup).
// Usage: node group.js BOOTSTRAP TOPIC GROUP PRODUCE_COUNT EXPECTED KEY_PREFIX
// Prints one line, `RESULT {json}`, for tests/integration/test_groups_kafkajs.py to check.
"use strict";

const { Kafka, Partitioners, logLevel } = require("kafkajs");

const TIMEOUT_MS = 30000;
const LINGER_MS = 1500;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function main() {
  const [bootstrap, topic, groupId, produceCount, expected, prefix] = process.argv.slice(2);
  const client = (clientId) =>
    new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.ERROR, retry: { retries: 5 } });

  const admin = client("kjs-admin").admin();
  await admin.connect();
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  await admin.disconnect();
  const partitions = metadata.topics[0].partitions.length;

  const assignments = {}; // member -> partitions of its latest join
  const joins = [];
  const consumed = [];
  const members = [];
  for (const clientId of ["kjs-a", "kjs-b"]) {
    const consumer = client(clientId).consumer({
      groupId,
      sessionTimeout: 6000,
      heartbeatInterval: 500,
      rebalanceTimeout: 10000,
      maxWaitTimeInMs: 250, // a fetch long-poll delays noticing a rebalance and leaving
    });
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assigned = event.payload.memberAssignment[topic] || [];
      assignments[clientId] = [...assigned].sort((a, b) => a - b);
      joins.push({ member: clientId, assigned: assignments[clientId] });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic: from, partition, message }) => {
        consumed.push({
          member: clientId,
          partition,
          offset: Number(message.offset),
          key: message.key.toString(),
        });
        const next = String(Number(message.offset) + 1);
        await consumer.commitOffsets([{ topic: from, partition, offset: next }]);
      },
    });
    members.push(consumer);
  }

  // Settled: both members own something, nobody owns a partition twice, all are owned.
  const settled = () => {
    const owned = Object.values(assignments);
    const all = owned.flat();
    return (
      owned.length === 2 &&
      owned.every((ps) => ps.length > 0) &&
      new Set(all).size === all.length &&
      all.length === partitions
    );
  };
  await waitFor(settled, "the two members to share the partitions");
  const shared = JSON.parse(JSON.stringify(assignments));

  const produced = [];
  if (Number(produceCount) > 0) {
    const producer = client("kjs-producer").producer({
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    const messages = [];
    for (let i = 0; i < Number(produceCount); i++) {
      const message = { key: `${prefix}-${i}`, value: `value ${i}`, partition: i % partitions };
      messages.push(message);
      produced.push(message.key);
    }
    await producer.send({ topic, acks: -1, messages });
    await producer.disconnect();
  }

  const distinct = () => new Set(consumed.map((c) => c.key)).size;
  await waitFor(() => distinct() >= Number(expected), `${expected} distinct keys`);
  await sleep(LINGER_MS);
  for (const consumer of members) await consumer.disconnect();
  process.stdout.write(`RESULT ${JSON.stringify({ shared, joins, consumed, produced })}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
