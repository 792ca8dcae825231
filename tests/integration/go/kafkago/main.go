// Command kafkago drives Debian's kafka-go 0.2.1 (Produce v2 with magic 1 message sets, Fetch
// v2, OffsetCommit v2, OffsetFetch v1, JoinGroup v1) against a broker for the integration tests.
//
//	kafkago produce BOOTSTRAP TOPIC CODEC COUNT BASE_TIMESTAMP_MS
//	    writes COUNT keyed messages key-i/value-i stamped BASE+i, hash-balanced
//	kafkago consume BOOTSTRAP TOPIC GROUP COUNT
//	    reads COUNT messages in consumer group GROUP, commits them, prints one JSON line each
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/gzip"
	"github.com/segmentio/kafka-go/lz4"
	"github.com/segmentio/kafka-go/snappy"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func codec(name string) kafka.CompressionCodec {
	switch name {
	case "none":
		return nil
	case "gzip":
		return gzip.NewCompressionCodec()
	case "snappy":
		return snappy.NewCompressionCodec()
	case "lz4":
		return lz4.NewCompressionCodec()
	}
	fail("unknown codec %s", name)
	return nil
}

func produce(bootstrap, topic, codecName string, count int, base int64) {
	w := kafka.NewWriter(kafka.WriterConfig{
		Brokers:          []string{bootstrap},
		Topic:            topic,
		Balancer:         &kafka.Hash{},
		BatchSize:        count,
		BatchTimeout:     50 * time.Millisecond,
		RequiredAcks:     -1,
		CompressionCodec: codec(codecName),
	})
	msgs := make([]kafka.Message, count)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:   []byte(fmt.Sprintf("key-%d", i)),
			Value: []byte(fmt.Sprintf("value-%d", i)),
			Time:  time.Unix(0, (base+int64(i))*int64(time.Millisecond)),
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		fail("write: %v", err)
	}
	if err := w.Close(); err != nil {
		fail("close: %v", err)
	}
}

type line struct {
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	Timestamp int64  `json:"timestamp"`
}

func consume(bootstrap, topic, group string, count int) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        []string{bootstrap},
		Topic:          topic,
		GroupID:        group,
		MinBytes:       1,
		MaxBytes:       1 << 20,
		MaxWait:        200 * time.Millisecond,
		SessionTimeout: 10 * time.Second,
		ErrorLogger:    log.New(os.Stderr, "kafka-go: ", log.LstdFlags),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := json.NewEncoder(os.Stdout)
	for i := 0; i < count; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			fail("fetch %d: %v", i, err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			fail("commit: %v", err)
		}
		out.Encode(line{m.Partition, m.Offset, string(m.Key), string(m.Value), m.Time.UnixNano() / int64(time.Millisecond)})
	}
	if err := r.Close(); err != nil {
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
	if len(os.Args) < 2 {
		fail("usage: kafkago produce|consume ...")
	}
	switch {
	case os.Args[1] == "produce" && len(os.Args) == 7:
		base, _ := strconv.ParseInt(os.Args[6], 10, 64)
		produce(os.Args[2], os.Args[3], os.Args[4], atoi(os.Args[5]), base)
	case os.Args[1] == "consume" && len(os.Args) == 6:
		consume(os.Args[2], os.Args[3], os.Args[4], atoi(os.Args[5]))
	default:
		fail("bad arguments %v", os.Args[1:])
	}
}
