// Package auth makes the NATS identities of a gorch deployment: one per
// role (admin, coordinator, each worker, collector, client), each allowed
// what its role needs and nothing else ([Table]).
//
// # Why operator mode with scoped signing keys
//
// [Init] writes a NATS operator-mode deployment (nats-io/jwt/v2 and
// nkeys) with the memory resolver: an operator, a system account and the
// gorch account, whose JWTs sit in the server configuration. The gorch
// account has one scoped signing key per role; the scope's template is
// the role's permission set, and the worker template names the worker's
// own subjects through {{name()}}, the name in the user's JWT. So:
//
//   - the server configuration never changes when a worker is added:
//     [AddWorker] signs a new user with the worker key, and the server
//     trusts it at once, with the worker permissions under its name;
//   - the permissions live in the account JWT, not in the users': a user
//     JWT cannot carry more, and whoever holds only the worker signing
//     key (say, what provisions worker machines) can mint workers but no
//     coordinator or admin;
//   - no secret reaches the server or crosses the wire: a user proves its
//     key by signing the server's nonce.
//
// A config file of nkey users would need a server reload for every new
// worker and would repeat the whole permission set per user; a user and
// password config, in addition, keeps secrets in the server config.
//
// # Layout
//
//	<dir>/nats-server.conf         public: listen, JetStream, TLS, operator and account JWTs
//	<dir>/creds/<role>.creds       0600: admin, coordinator, collector, client
//	<dir>/creds/worker-<id>.creds  0600: one per worker
//	<dir>/keys/*.nk, ca-key.pem    0600: operator, account and signing keys; keep them offline
//	<dir>/tls/ca.pem, server.pem   with --tls-host: the CA clients trust, the server certificate
//	<dir>/tls/server-key.pem       0600
package auth
