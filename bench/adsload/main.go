// Command adsload is bench/push.py's load generator for many synthetic ADS clients: what Istio's pilot-load does for
// istiod. Python clients cost about as much CPU per response as the server under test does, so at 10,000 clients on
// a small machine they measure the harness, not the server; these cost a few tens of microseconds per response.
//
// Every client is its own gRPC connection (own TCP connection, loopback only) speaking ADS like the light Python
// client (xds_server/testing/fake_client.py with light=True): it subscribes to clusters and listeners (wildcard,
// node sent on the first request only), decodes only the envelope of each response (version, type, nonce) and ACKs
// it at once. State of the world or delta (-delta).
//
// Protocol on stdin/stdout, one line each:
//
//	-> "ready <seconds>"            once every client has its first CDS and LDS response (connected in batches)
//	<- "wait <version> <timeout_s>" -> {"acked": {node: unix_seconds}}: the wall-clock time each client sent its
//	                                   ACK of that CDS version, once all have (or "error <text>" after the timeout)
//	<- "stop"                         close every stream and exit
//
// Wall-clock (CLOCK_REALTIME) times, because Go does not expose CLOCK_MONOTONIC's value; the caller converts them
// with its own clock offset taken in the same second.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	sotwMethod   = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	deltaMethod  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
)

// raw is a message already in wire form: the codec below passes it through.
type raw struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*raw).b, nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	v.(*raw).b = append(v.(*raw).b[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func str(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func node(id string) []byte { return str(str(nil, 1, id), 2, "fake") }

// request is a DiscoveryRequest (delta=false) or DeltaDiscoveryRequest, as the light Python client encodes them.
func request(delta bool, typeURL, version, nonce, nodeID string) []byte {
	var b []byte
	if delta {
		if nodeID != "" {
			b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), node(nodeID))
		}
		return str(str(b, 2, typeURL), 6, nonce)
	}
	b = str(b, 1, version)
	if nodeID != "" {
		b = protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType), node(nodeID))
	}
	return str(str(b, 4, typeURL), 5, nonce)
}

// envelope reads version, type URL and nonce of a (Delta)DiscoveryResponse: fields 1, 4 and 5 in both.
func envelope(b []byte) (version, typeURL, nonce string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", "", "", protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType && (num == 1 || num == 4 || num == 5) {
			v, m := protowire.ConsumeString(b)
			if m < 0 {
				return "", "", "", protowire.ParseError(m)
			}
			switch num {
			case 1:
				version = v
			case 4:
				typeURL = v
			case 5:
				nonce = v
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return "", "", "", protowire.ParseError(m)
		}
		b = b[m:]
	}
	return version, typeURL, nonce, nil
}

type acks struct {
	mu     sync.Mutex
	byVer  map[string]map[string]float64 // CDS version -> node -> unix seconds of the ACK
	failed error
}

func (a *acks) record(version, nodeID string, t float64) {
	a.mu.Lock()
	m := a.byVer[version]
	if m == nil {
		m = map[string]float64{}
		a.byVer[version] = m
	}
	m[nodeID] = t
	a.mu.Unlock()
}

func (a *acks) fail(err error) {
	a.mu.Lock()
	if a.failed == nil {
		a.failed = err
	}
	a.mu.Unlock()
}

func client(ctx context.Context, addr, nodeID string, delta bool, a *acks, ready *sync.WaitGroup) {
	readyOnce := sync.OnceFunc(ready.Done)
	defer readyOnce() // a failed client does not hold up the others' connect; the failure is reported
	fail := func(err error) { a.fail(fmt.Errorf("client %s: %w", nodeID, err)) }
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// fixed windows (this also turns off grpc-go's BDP pings, which Envoy does not send either)
		grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<20),
		grpc.WithReadBufferSize(16<<10), grpc.WithWriteBufferSize(16<<10),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		fail(err)
		return
	}
	defer cc.Close()
	method := sotwMethod
	if delta {
		method = deltaMethod
	}
	stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		fail(err)
		return
	}
	send := func(b []byte) error { return stream.SendMsg(&raw{b}) }
	if err := send(request(delta, clusterType, "", "", nodeID)); err != nil {
		fail(err)
		return
	}
	if err := send(request(delta, listenerType, "", "", "")); err != nil {
		fail(err)
		return
	}
	seen := map[string]bool{}
	msg := &raw{}
	for {
		if err := stream.RecvMsg(msg); err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			return
		}
		version, typeURL, nonce, err := envelope(msg.b)
		if err != nil {
			fail(err)
			return
		}
		if err := send(request(delta, typeURL, version, nonce, "")); err != nil {
			fail(err)
			return
		}
		if typeURL == clusterType {
			a.record(version, nodeID, float64(time.Now().UnixNano())/1e9)
		}
		seen[typeURL] = true
		if seen[clusterType] && seen[listenerType] {
			readyOnce()
		}
	}
}

func main() {
	addrs := flag.String("addrs", "", "comma-separated host:port of the xDS servers (client i dials addrs[i % n])")
	nodesFile := flag.String("nodes", "", "file with one node id per line")
	delta := flag.Bool("delta", false, "delta xDS instead of state of the world")
	batch := flag.Int("batch", 50, "clients connected at a time (a burst of SYNs overflows listen queues)")
	flag.Parse()
	servers := strings.Split(*addrs, ",")
	data, err := os.ReadFile(*nodesFile)
	if err != nil || *addrs == "" {
		fmt.Fprintln(os.Stderr, "adsload: -addrs and -nodes are required:", err)
		os.Exit(2)
	}
	nodes := strings.Fields(string(data))
	a := &acks{byVer: map[string]map[string]float64{}}
	ctx, cancel := context.WithCancel(context.Background())
	var all sync.WaitGroup
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	start := time.Now()
	for i := 0; i < len(nodes); i += *batch {
		var ready sync.WaitGroup
		for j := i; j < min(i+*batch, len(nodes)); j++ {
			ready.Add(1)
			all.Add(1)
			go func(j int) {
				defer all.Done()
				client(ctx, servers[j%len(servers)], nodes[j], *delta, a, &ready)
			}(j)
		}
		ready.Wait()
		a.mu.Lock()
		failed := a.failed
		a.mu.Unlock()
		if failed != nil {
			reply("error %v", failed)
			os.Exit(1)
		}
	}
	reply("ready %.3f", time.Since(start).Seconds())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 1 && f[0] == "stop" {
			break
		}
		if len(f) != 3 || f[0] != "wait" {
			reply("error bad command %q", in.Text())
			continue
		}
		timeout, _ := strconv.ParseFloat(f[2], 64)
		got, err := wait(a, f[1], len(nodes), time.Duration(timeout*float64(time.Second)))
		if err != nil {
			reply("error %v", err)
			continue
		}
		b, _ := json.Marshal(map[string]any{"acked": got})
		reply("%s", b)
	}
	cancel()
	all.Wait()
}

func wait(a *acks, version string, n int, timeout time.Duration) (map[string]float64, error) {
	deadline := time.Now().Add(timeout)
	for {
		a.mu.Lock()
		failed, got := a.failed, a.byVer[version]
		done := len(got) == n
		if done {
			got = maps.Clone(got)
		}
		a.mu.Unlock()
		if failed != nil {
			return nil, failed
		}
		if done {
			return got, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("not every client ACKed " + version + " after " + timeout.String() +
				" (" + strconv.Itoa(len(got)) + " of " + strconv.Itoa(n) + ")")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
