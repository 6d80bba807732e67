package health

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/clustertest"
)

// TestQueueGaugesAfterPublish reads the queue gauges right after each
// dispatch publish, with no wait: the server counts a new message for its
// consumers asynchronously, so a gauge read from a consumer's NumPending
// lagged the publish (1 read in 6 said one run too few on an idle
// machine); read from the stream's store it is exact. A fetched run moves
// from pending to in flight, an acked one leaves both.
func TestQueueGaugesAfterPublish(t *testing.T) {
	js := clustertest.Start(t, -1, cluster.SetupOptions{}).JS
	ctx := context.Background()
	g := NewClusterGauges(js, 0)
	check := func(what string, want map[string]float64) {
		t.Helper()
		got := map[string]float64{}
		for _, m := range g.Metrics(ctx) {
			for _, s := range m.Samples {
				got[fmt.Sprintf("%s{%s=%q}", m.Name, s.Labels[0], s.Labels[1])] = s.Value
			}
		}
		for series, w := range want {
			if got[series] != w {
				t.Fatalf("%s: %s = %v; want %v", what, series, got[series], w)
			}
		}
	}
	const n = 300
	for i := 1; i <= n; i++ {
		if _, err := js.Publish(ctx, cluster.DispatchSubject(cluster.PriorityHigh), []byte("run")); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("after publish %d", i), map[string]float64{`gorch_queue_pending{priority="high"}`: float64(i),
			`gorch_queue_pending{priority="normal"}`: 0, `gorch_queue_in_flight{priority="high"}`: 0})
	}
	c, err := js.Consumer(ctx, cluster.StreamRuns, cluster.DispatchConsumer(cluster.PriorityHigh))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	check("after a fetch", map[string]float64{`gorch_queue_pending{priority="high"}`: n - 1, `gorch_queue_in_flight{priority="high"}`: 1})
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	check("after its ack", map[string]float64{`gorch_queue_pending{priority="high"}`: n - 1, `gorch_queue_in_flight{priority="high"}`: 0})
}
