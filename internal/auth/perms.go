package auth

import (
	"slices"
	"strings"

	"github.com/gorch/gorch/internal/cluster"
)

// Roles lists every role, in the order the permission table shows them.
var Roles = []string{cluster.RoleAdmin, cluster.RoleCoordinator, cluster.RoleWorker, cluster.RoleCollector, cluster.RoleClient}

// WorkerID stands for a worker's id in the worker role's permissions.
// The NATS server replaces it with the name in the user's JWT (a
// permission template of the worker signing key), so one template serves
// every worker and each worker's user may act only under its own id.
const WorkerID = "{{name()}}"

// Grant is one row of the permission table: what a role does, and the
// subjects that lets it publish to (Pub) and subscribe to (Sub). Deny
// entries carve exceptions out of a wider allow.
type Grant struct {
	Role      string
	What      string
	Pub, Sub  []string
	DenyPub   []string
	Responder bool // may reply to the requests it receives (allow_responses)
}

// Permissions is a role's whole permission set.
type Permissions struct {
	PubAllow, PubDeny, SubAllow []string
	Responder                   bool
}

// Of collects role's rows of Table into one permission set.
func Of(role string) Permissions {
	var p Permissions
	for _, g := range Table() {
		if g.Role != role {
			continue
		}
		p.PubAllow = append(p.PubAllow, g.Pub...)
		p.SubAllow = append(p.SubAllow, g.Sub...)
		p.PubDeny = append(p.PubDeny, g.DenyPub...)
		p.Responder = p.Responder || g.Responder
	}
	for _, l := range []*[]string{&p.PubAllow, &p.PubDeny, &p.SubAllow} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return p
}

// Table is the least-privilege permission table: every role's rows, each
// derived from the cluster's subject, stream and bucket names
// (docs/cluster-v2.md). A role may do what its rows allow and nothing
// else; in particular no role may delete or purge a stream, and only
// admin may change one.
func Table() []Grant {
	w := WorkerID
	var dispatch, dispConsumers []string
	for _, p := range cluster.Priorities {
		dispatch = append(dispatch, cluster.DispatchSubject(p))
		dispConsumers = append(dispConsumers, cluster.DispatchConsumer(p))
	}
	dispInfo := mapf(dispConsumers, func(c string) string { return consumerInfo(cluster.StreamRuns, c) })
	return []Grant{
		{Role: cluster.RoleAdmin, What: "create streams, consumers and buckets (gorch setup); inspect and edit their settings",
			Pub: []string{jsAPI("INFO"), jsAPI("STREAM", "CREATE", "*"), jsAPI("STREAM", "UPDATE", "*"), jsAPI("STREAM", "INFO", "*"),
				jsAPI("STREAM", "NAMES"), jsAPI("STREAM", "LIST"), jsAPI("CONSUMER", "CREATE", ">"), jsAPI("CONSUMER", "DURABLE", "CREATE", ">"),
				jsAPI("CONSUMER", "INFO", ">"), jsAPI("CONSUMER", "NAMES", "*"), jsAPI("CONSUMER", "LIST", "*")}},
		inbox(cluster.RoleAdmin, ""),

		{Role: cluster.RoleCoordinator, What: "serve the client API, the worker API and the collector's notices (queue group)",
			Sub: []string{cluster.APISubject(">"), cluster.WorkerAPISubject("*", "*"), cluster.CollectorFinalSubject}, Responder: true},
		{Role: cluster.RoleCoordinator, What: "dispatch runs", Pub: append([]string{streamInfo(cluster.StreamRuns)}, dispatch...)},
		{Role: cluster.RoleCoordinator, What: "send cancel notices to workers", Pub: []string{cluster.ControlSubject("*")}},
		{Role: cluster.RoleCoordinator, What: "the only writer of run state", Pub: []string{kvKey(cluster.BucketRuns, cluster.RunKey(">"))}},
		readBucket(cluster.RoleCoordinator, cluster.BucketRuns),
		readBucket(cluster.RoleCoordinator, cluster.BucketWorkers),
		{Role: cluster.RoleCoordinator, What: "queue gauges (/metrics)", Pub: dispInfo},
		inbox(cluster.RoleCoordinator, ""),

		{Role: cluster.RoleWorker, What: "take runs off the queue: fetch, ack, in-progress, nak, term",
			Pub: slices.Concat(dispInfo,
				mapf(dispConsumers, func(c string) string { return consumerNext(cluster.StreamRuns, c) }),
				mapf(dispConsumers, func(c string) string { return ack(cluster.StreamRuns, c) }))},
		{Role: cluster.RoleWorker, What: "ask the coordinator for its runs' transitions, as itself",
			Pub: []string{cluster.WorkerAPISubject(w, "*")}},
		{Role: cluster.RoleWorker, What: "publish its runs' events, as itself",
			Pub: []string{streamInfo(cluster.StreamEvents), cluster.EventSubject(w, "*", ">")}},
		{Role: cluster.RoleWorker, What: "heartbeat its own key", Pub: []string{streamInfo(kvStream(cluster.BucketWorkers)),
			kvKey(cluster.BucketWorkers, cluster.WorkerKey(w))}},
		{Role: cluster.RoleWorker, What: "dead-letter a run request it cannot read", Pub: []string{cluster.DLQSubject(">")}},
		{Role: cluster.RoleWorker, What: "hear cancel notices for its runs", Sub: []string{cluster.ControlSubject(w)}},
		inbox(cluster.RoleWorker, w),

		{Role: cluster.RoleCollector, What: "consume EVENTS through its durable consumer",
			Pub: []string{consumerInfo(cluster.StreamEvents, cluster.ConsumerCollect),
				consumerNext(cluster.StreamEvents, cluster.ConsumerCollect), ack(cluster.StreamEvents, cluster.ConsumerCollect)}},
		{Role: cluster.RoleCollector, What: "dead-letter forged or unreadable events", Pub: []string{cluster.DLQSubject(">")}},
		{Role: cluster.RoleCollector, What: "tell the coordinator a run's records are final", Pub: []string{cluster.CollectorFinalSubject}},
		readBucket(cluster.RoleCollector, cluster.BucketRuns),
		inbox(cluster.RoleCollector, ""),

		{Role: cluster.RoleClient, What: "submit, sweep, cancel, status, list, workers (requests to the coordinator)",
			Pub: []string{cluster.APISubject(">")}},
		readStream(cluster.RoleClient, cluster.StreamEvents, cluster.ConsumerCollect),
		readBucket(cluster.RoleClient, cluster.BucketRuns),
		inbox(cluster.RoleClient, ""),
	}
}

// inbox lets role subscribe to its own replies, and to no one else's.
func inbox(role, id string) Grant {
	return Grant{Role: role, What: "read its own replies", Sub: []string{cluster.InboxPrefix(role, id) + ".>"}}
}

// readBucket lets role read a KV bucket: bind, get, list and watch (an
// ordered consumer with flow control), never write.
func readBucket(role, bucket string) Grant {
	s := kvStream(bucket)
	return Grant{Role: role, What: "read KV " + bucket + " (get, list, watch)", Pub: []string{
		streamInfo(s), jsAPI("STREAM", "MSG", "GET", s), jsAPI("DIRECT", "GET", s), jsAPI("DIRECT", "GET", s, ">"),
		jsAPI("CONSUMER", "CREATE", s), jsAPI("CONSUMER", "CREATE", s, ">"), jsAPI("CONSUMER", "DELETE", s, "*"),
		consumerInfo(s, "*"), "$JS.FC." + s + ".>"}}
}

// readStream lets role read stream through ordered consumers and direct
// gets; the durable consumer named keep stays out of its reach (fetching
// from it, or editing or deleting it, would take messages from its owner).
func readStream(role, stream, keep string) Grant {
	return Grant{Role: role, What: "read " + stream + " (ordered consumers, last message of a subject)", Pub: []string{
		streamInfo(stream), jsAPI("STREAM", "MSG", "GET", stream), jsAPI("DIRECT", "GET", stream), jsAPI("DIRECT", "GET", stream, ">"),
		jsAPI("CONSUMER", "CREATE", stream), jsAPI("CONSUMER", "CREATE", stream, ">"), jsAPI("CONSUMER", "DELETE", stream, "*"),
		consumerInfo(stream, "*"), consumerNext(stream, "*"), "$JS.FC." + stream + ".>"},
		DenyPub: []string{jsAPI("CONSUMER", "CREATE", stream, keep), jsAPI("CONSUMER", "CREATE", stream, keep, ">"),
			jsAPI("CONSUMER", "DURABLE", "CREATE", stream, keep), jsAPI("CONSUMER", "DELETE", stream, keep),
			consumerNext(stream, keep), ack(stream, keep)}}
}

func jsAPI(tokens ...string) string        { return "$JS.API." + strings.Join(tokens, ".") }
func streamInfo(stream string) string      { return jsAPI("STREAM", "INFO", stream) }
func consumerInfo(stream, c string) string { return jsAPI("CONSUMER", "INFO", stream, c) }
func consumerNext(stream, c string) string { return jsAPI("CONSUMER", "MSG", "NEXT", stream, c) }
func ack(stream, c string) string          { return "$JS.ACK." + stream + "." + c + ".>" }
func kvStream(bucket string) string        { return "KV_" + bucket }
func kvKey(bucket, key string) string      { return "$KV." + bucket + "." + key }
func mapf(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}
