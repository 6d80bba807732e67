package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/testutil"
)

// operatorEdits are the settings an operator changes by hand (`nats
// stream edit`, `nats consumer edit`): none of them is what gorch setup
// would choose.
type operatorEdits struct {
	eventsMaxBytes int64
	dlqMaxAge      time.Duration
	maxAckPending  int
}

var edits = operatorEdits{eventsMaxBytes: 1 << 30, dlqMaxAge: 90 * time.Minute, maxAckPending: 777}

// edit applies the operator's edits through js.
func (e operatorEdits) apply(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	for _, s := range []struct {
		name string
		f    func(*jetstream.StreamConfig)
	}{
		{cluster.StreamEvents, func(c *jetstream.StreamConfig) { c.MaxBytes = e.eventsMaxBytes }},
		{cluster.StreamDLQ, func(c *jetstream.StreamConfig) { c.MaxAge = e.dlqMaxAge }},
	} {
		st, err := js.Stream(ctx, s.name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		s.f(&cfg)
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatalf("editing stream %s: %v", s.name, err)
		}
	}
	cons, err := js.Consumer(ctx, cluster.StreamEvents, cluster.ConsumerCollect)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	cfg.MaxAckPending = e.maxAckPending
	if _, err := js.UpdateConsumer(ctx, cluster.StreamEvents, cfg); err != nil {
		t.Fatalf("editing consumer %s: %v", cluster.ConsumerCollect, err)
	}
}

// check returns what differs from the edits in the server's settings.
func (e operatorEdits) check(js jetstream.JetStream) error {
	ctx := context.Background()
	ev, err := js.Stream(ctx, cluster.StreamEvents)
	if err != nil {
		return err
	}
	dlq, err := js.Stream(ctx, cluster.StreamDLQ)
	if err != nil {
		return err
	}
	cons, err := js.Consumer(ctx, cluster.StreamEvents, cluster.ConsumerCollect)
	if err != nil {
		return err
	}
	got := operatorEdits{ev.CachedInfo().Config.MaxBytes, dlq.CachedInfo().Config.MaxAge, cons.CachedInfo().Config.MaxAckPending}
	if got != e {
		return fmt.Errorf("settings %+v; want the operator's %+v", got, e)
	}
	return nil
}

// TestOperatorEditsSurvive: an operator's edits to a stream's and a
// consumer's settings survive `gorch setup` run again and a restart of
// every service — coordinator, collector, worker — and of `gorch up`, and
// the cluster still runs a run afterwards.
func TestOperatorEditsSurvive(t *testing.T) {
	testutil.Long(t, "starts gorch processes and servers")
	t.Run("services", func(t *testing.T) {
		c := startCluster(t, "w1")
		edits.apply(t, c.js)
		out := c.gorch("setup", "--nats", c.url, "--events-max-bytes", "5MiB", "--dlq-max-age", "1h")
		t.Logf("gorch setup again:\n%s", out)
		for _, name := range []string{"coordinator", "collector", "worker-w1"} {
			c.restart(c.procByName(name))
		}
		c.waitServing(context.Background(), []string{"w1"})
		if err := edits.check(c.js); err != nil {
			t.Errorf("after gorch setup and a restart of every service: %v", err)
		}
		id := c.submit(shortSpec(100, 1))
		if st := c.waitTerminal(60*time.Second, id)[id]; st.Status != cluster.StateSucceeded {
			t.Errorf("run after the restarts = %s (%s); want succeeded", st.Status, st.Error)
		}
	})
	t.Run("up", func(t *testing.T) {
		c := startUpCluster(t, nil, 2)
		edits.apply(t, c.js)
		up := c.restart(c.procByName("up"))
		var url string
		testutil.Eventually(t, 60*time.Second, func() error {
			m := upReady.FindStringSubmatch(readFile(up.log))
			if m == nil {
				return fmt.Errorf("the restarted gorch up is not ready")
			}
			url = m[1]
			return nil
		})
		c.attach(url, false)
		c.waitServing(context.Background(), []string{"up-1", "up-2"})
		if err := edits.check(c.js); err != nil {
			t.Errorf("after a restart of gorch up: %v", err)
		}
		id := c.submit(shortSpec(100, 1))
		if st := c.waitTerminal(60*time.Second, id)[id]; st.Status != cluster.StateSucceeded {
			t.Errorf("run after the restart = %s (%s); want succeeded", st.Status, st.Error)
		}
	})
}
