// Command sarama drives Debian's sarama 1.22.1 against a broker for the integration tests. The
// protocol version is an argument: 0.8.2.0 (sarama's oldest: Produce v0 with magic 0 message
// sets, Fetch v0, ListOffsets v0, Metadata v0) or, for what needs more, the oldest that has it
// (lz4: 0.10.0.0, Produce v2 with magic 1; consumer groups: 0.10.2.0, Fetch v3, JoinGroup v1,
// OffsetCommit v1, OffsetFetch v1).
//
//	sarama produce VERSION BOOTSTRAP TOPIC CODEC COUNT BASE_TIMESTAMP_MS
//	    sends COUNT keyed messages key-i/value-i stamped BASE+i (hash partitioner)
//	sarama partitions VERSION BOOTSTRAP TOPIC COUNT
//	    reads COUNT messages from the oldest offset of every partition, no group
//	sarama group VERSION BOOTSTRAP TOPIC GROUP COUNT
//	    reads COUNT messages in consumer group GROUP, marks them, commits on close
//
// Each message read is printed as one JSON line.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func config(version string) *sarama.Config {
	v, err := sarama.ParseKafkaVersion(version)
	if err != nil {
		fail("version: %v", err)
	}
	c := sarama.NewConfig()
	c.Version = v
	c.ClientID = "odradek-sarama-test"
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	return c
}

func codec(name string) sarama.CompressionCodec {
	switch name {
	case "none":
		return sarama.CompressionNone
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	}
	fail("unknown codec %s", name)
	return sarama.CompressionNone
}

type line struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Timestamp int64  `json:"timestamp"`
}

var printLock sync.Mutex

func print(m *sarama.ConsumerMessage) {
	ts := int64(-1)
	if !m.Timestamp.IsZero() {
		ts = m.Timestamp.UnixNano() / int64(time.Millisecond)
	}
	printLock.Lock()
	defer printLock.Unlock()
	json.NewEncoder(os.Stdout).Encode(line{m.Partition, m.Offset, string(m.Key), string(m.Value), ts})
}

func produce(c *sarama.Config, bootstrap, topic, codecName string, count int, base int64) {
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Compression = codec(codecName)
	c.Producer.Flush.Messages = count
	c.Producer.Flush.Frequency = 50 * time.Millisecond
	producer, err := sarama.NewAsyncProducer([]string{bootstrap}, c)
	if err != nil {
		fail("producer: %v", err)
	}
	for i := 0; i < count; i++ {
		producer.Input() <- &sarama.ProducerMessage{
			Topic:     topic,
			Key:       sarama.StringEncoder(fmt.Sprintf("key-%d", i)),
			Value:     sarama.StringEncoder(fmt.Sprintf("value-%d", i)),
			Timestamp: time.Unix(0, (base+int64(i))*int64(time.Millisecond)),
		}
	}
	for i := 0; i < count; i++ {
		select {
		case <-producer.Successes():
		case err := <-producer.Errors():
			fail("produce: %v", err)
		case <-time.After(60 * time.Second):
			fail("produce: timed out")
		}
	}
	if err := producer.Close(); err != nil {
		fail("close: %v", err)
	}
}

func partitions(c *sarama.Config, bootstrap, topic string, count int) {
	consumer, err := sarama.NewConsumer([]string{bootstrap}, c)
	if err != nil {
		fail("consumer: %v", err)
	}
	ids, err := consumer.Partitions(topic)
	if err != nil {
		fail("partitions: %v", err)
	}
	messages := make(chan *sarama.ConsumerMessage)
	for _, id := range ids {
		pc, err := consumer.ConsumePartition(topic, id, sarama.OffsetOldest)
		if err != nil {
			fail("consume partition %d: %v", id, err)
		}
		go func(pc sarama.PartitionConsumer) {
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					messages <- m
				case err := <-pc.Errors():
					fail("consume: %v", err)
				}
			}
		}(pc)
	}
	for i := 0; i < count; i++ {
		select {
		case m := <-messages:
			print(m)
		case <-time.After(60 * time.Second):
			fail("consume: timed out after %d messages", i)
		}
	}
	os.Exit(0) // the partition consumers are blocked sending to `messages`
}

type handler struct {
	remaining int
	mu        sync.Mutex
	done      chan struct{}
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		if h.remaining > 0 {
			print(m)
			s.MarkMessage(m, "")
			h.remaining--
			if h.remaining == 0 {
				close(h.done)
			}
		}
		h.mu.Unlock()
	}
	return nil
}

func group(c *sarama.Config, bootstrap, topic, groupID string, count int) {
	c.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
	g, err := sarama.NewConsumerGroup([]string{bootstrap}, groupID, c)
	if err != nil {
		fail("group: %v", err)
	}
	go func() {
		for err := range g.Errors() {
			fail("group error: %v", err)
		}
	}()
	h := &handler{remaining: count, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, h); err != nil {
				fail("consume: %v", err)
			}
		}
	}()
	select {
	case <-h.done:
	case <-time.After(60 * time.Second):
		fail("group: timed out")
	}
	time.Sleep(300 * time.Millisecond) // a commit interval passes with everything marked
	cancel()
	if err := g.Close(); err != nil {
		fail("close: %v", err)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail("not a number: %s", s)
	}
	return n
}

func main() {
	a := os.Args
	if len(a) < 3 {
		fail("usage: sarama produce|partitions|group VERSION ...")
	}
	c := config(a[2])
	switch {
	case a[1] == "produce" && len(a) == 8:
		base, _ := strconv.ParseInt(a[7], 10, 64)
		produce(c, a[3], a[4], a[5], atoi(a[6]), base)
	case a[1] == "partitions" && len(a) == 6:
		partitions(c, a[3], a[4], atoi(a[5]))
	case a[1] == "group" && len(a) == 7:
		group(c, a[3], a[4], a[5], atoi(a[6]))
	default:
		fail("bad arguments %v", a[1:])
	}
}
