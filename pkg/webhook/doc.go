// Package webhook turns registry push notifications into scan requests.
//
// Each supported registry has one parser: [ParseDistribution] for CNCF
// Distribution (registry 2.x and 3.x) notification envelopes, [ParseHarbor]
// for Harbor webhooks (Default and CloudEvents formats) and [ParseECR] for
// Amazon EventBridge "ECR Image Action" events delivered by an API
// destination. A parser returns one [Event] for every manifest or index push
// in the payload and one [Skipped] for everything else (blob pushes, pulls,
// mounts, deletes, other event types), so the HTTP layer can answer 2xx and
// the registry does not retry uninteresting events forever.
//
// Payloads are untrusted. Every returned Event has passed [Event.Validate]:
// the digest is sha256 with 64 lowercase hex digits, the repository follows
// the distribution reference path grammar, the tag (if any) follows the tag
// grammar and the registry is a lowercase host[:port] without scheme, path
// or userinfo. A payload that is not JSON, does not have the expected shape,
// or carries an invalid field in a push that would become an Event is
// rejected with an error wrapping [ErrMalformed] whose message names the
// offending field, e.g.
//
//	malformed webhook payload: events[2].target.digest: "sha256:zz" is not a sha256 digest
//
// Fields of skipped events are not validated: an event we do not act on
// cannot make the whole delivery fail.
//
// The package is pure: no I/O, no logging, no global state.
package webhook
