// The article's service registration with etcd, as a Go program on the
// official client (clientv3 3.4, as Debian packages it): grant a lease of
// 10 s, put the instance's key with that lease, discover the service by
// prefix, and keep the lease alive until told to stop.
//
// It stops, without revoking the lease, when stdin reaches end of file or on
// SIGTERM/SIGINT; the key must then disappear once the lease runs out.
// Every step is printed as one line ("<step> <details>") for the test that
// drives it; a failure is printed as "error <step>: <cause>" and exits 1.
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build -o clientv3-register .
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/version"
)

func fail(step string, err error) {
	fmt.Printf("error %s: %v\n", step, err)
	os.Exit(1)
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "etcd gRPC endpoint")
	ttl := flag.Int64("ttl", 10, "lease TTL in seconds")
	service := flag.String("service", "user-service", "service name")
	addr := flag.String("addr", "127.0.0.1:8080", "instance address")
	flag.Parse()

	fmt.Printf("client go.etcd.io/etcd/clientv3 %s\n", version.Version)

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{*endpoint},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		fail("connect", err)
	}
	defer cli.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	lease, err := cli.Grant(ctx, *ttl)
	cancel()
	if err != nil {
		fail("grant", err)
	}
	fmt.Printf("granted %x ttl %d\n", int64(lease.ID), lease.TTL)

	key := fmt.Sprintf("/services/%s/%s", *service, *addr)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	put, err := cli.Put(ctx, key, *addr, clientv3.WithLease(lease.ID))
	cancel()
	if err != nil {
		fail("put", err)
	}
	fmt.Printf("put %s revision %d\n", key, put.Header.Revision)

	prefix := fmt.Sprintf("/services/%s/", *service)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	got, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		fail("get", err)
	}
	for _, kv := range got.Kvs {
		fmt.Printf("found %s = %s lease %x\n", kv.Key, kv.Value, kv.Lease)
	}

	keepCtx, stopKeeping := context.WithCancel(context.Background())
	answers, err := cli.KeepAlive(keepCtx, lease.ID)
	if err != nil {
		fail("keepalive", err)
	}

	stop := make(chan string, 2)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-signals
		stop <- sig.String()
	}()
	go func() {
		_, _ = io.Copy(ioutil.Discard, os.Stdin)
		stop <- "end of stdin"
	}()

	for {
		select {
		case answer, open := <-answers:
			if !open {
				fmt.Println("error keepalive: the keep-alive channel closed")
				os.Exit(1)
			}
			fmt.Printf("keepalive ttl %d\n", answer.TTL)
		case why := <-stop:
			// Stop renewing without revoking: the lease must run out on its own.
			stopKeeping()
			fmt.Printf("stopped %s\n", why)
			return
		}
	}
}
