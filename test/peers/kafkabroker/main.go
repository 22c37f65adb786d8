// Command kafkabroker runs franz-go's kfake, a Kafka-wire-protocol broker,
// on one 127.0.0.1 port for tests whose peers run in other processes (a
// real MinIO publishing notifications, dedupfn replicas consuming them).
// It prints "ready" on stdout once it accepts connections and shuts down
// cleanly (persisting state when -data-dir is set) on SIGINT or SIGTERM.
//
//	kafkabroker -port 9092 -topics events,other -partitions 4 -data-dir /tmp/k
//
// With -data-dir, topics, records and committed group offsets survive a
// restart of the binary, as they would on a real broker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kafkabroker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kafkabroker", flag.ContinueOnError)
	port := fs.Int("port", 0, "port to listen on at 127.0.0.1 (0 picks a free one)")
	topics := fs.String("topics", "", "comma-separated topics to create")
	partitions := fs.Int("partitions", 4, "partitions per created topic")
	dataDir := fs.String("data-dir", "", "directory to persist state in (empty: memory only)")
	// Real Kafka does not fsync each produce (log.flush.interval.messages
	// is unbounded by default); neither does this broker unless -sync is
	// given. Tests kill processes, not machines, so the page cache keeps
	// every record across a broker restart either way.
	syncWrites := fs.Bool("sync", false, "fsync every produced batch (slower than real Kafka's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("port must be in 0..65535, got %d", *port)
	}
	if *partitions < 1 {
		return fmt.Errorf("partitions must be >= 1, got %d", *partitions)
	}
	opts := []kfake.Opt{
		kfake.Ports(*port),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(*partitions),
	}
	if *topics != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*topics, ",")...))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
		if *syncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return errors.New("broker has no listener")
	}
	fmt.Printf("ready %s\n", addrs[0])
	<-ctx.Done()
	c.Close()
	return nil
}
