// Package distribution holds the quarantine enforcers for Docker
// Distribution (registry v2/v3), which has no per-digest pull block of
// its own:
//
//   - Gate: the Customs gate, a reverse proxy in front of the registry,
//     refuses pulls of quarantined digests from the quarantine record
//     alone. Quarantine and Release have nothing to do in the registry;
//     Status can probe the gate.
//   - Move (destructive, opt-in): copy the image to <prefix>/<repository>
//     with cross-repository blob mounts, then delete it from its
//     repository by digest (which needs storage.delete.enabled; in v3 it
//     removes the tags pointing at it too). Release copies it back,
//     restores the tags that are still free, and deletes the copy.
//
// Both reach registries through go-containerregistry's remote package;
// its errors carry the registry's error codes and messages, never the
// credentials.
package distribution

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/customs-scan/customs/pkg/quarantine"
)

// GateConfig says where the gate is, if it is to be probed.
type GateConfig struct {
	// URL is the gate's base URL ("https://gate.example.com:5000"); empty:
	// Status does not probe and reports "unknown".
	URL string
	// Options for the probe (auth, transport); the context is added.
	Options []remote.Option
}

// Gate is the enforcer of the Customs gate.
type Gate struct {
	host    string
	nameOpt []name.Option
	opts    []remote.Option
}

var _ quarantine.Enforcer = (*Gate)(nil)

// NewGate checks cfg.
func NewGate(cfg GateConfig) (*Gate, error) {
	g := &Gate{opts: cfg.Options}
	if cfg.URL == "" {
		return g, nil
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("distribution: gate URL %q: want http(s)://host[:port], no path or credentials", cfg.URL)
	}
	g.host = u.Host
	if u.Scheme == "http" {
		g.nameOpt = append(g.nameOpt, name.Insecure)
	}
	return g, nil
}

// Name implements quarantine.Enforcer.
func (g *Gate) Name() string { return "gate" }

// Quarantine has nothing to do: the gate reads the record.
func (g *Gate) Quarantine(ctx context.Context, ref quarantine.Ref, reason string) (string, error) {
	return "pulls refused by the Customs gate", nil
}

// Release has nothing to do: the gate reads the record.
func (g *Gate) Release(ctx context.Context, ref quarantine.Ref) (string, error) {
	return "pulls allowed again by the Customs gate", nil
}

// Status asks the gate for the manifest (HEAD by digest): 403 means the
// gate refuses it, 404 that the registry does not have it (both
// blocked), 2xx that it is served.
func (g *Gate) Status(ctx context.Context, ref quarantine.Ref) (quarantine.Status, error) {
	if g.host == "" {
		return quarantine.Status{Detail: "unknown: no gate URL to probe (the gate refuses pulls from the record)"}, nil
	}
	d, err := name.NewDigest(g.host+"/"+ref.Repository+"@"+ref.Digest, g.nameOpt...)
	if err != nil {
		return quarantine.Status{}, fmt.Errorf("distribution: gate probe of %s: %w", ref, err)
	}
	_, err = remote.Head(d, append(slices.Clone(g.opts), remote.WithContext(ctx))...)
	switch code := statusOf(err); {
	case err == nil:
		return quarantine.Status{Detail: "served by the gate"}, nil
	case code == http.StatusForbidden:
		return quarantine.Status{Blocked: true, Detail: "refused by the gate (403)"}, nil
	case code == http.StatusNotFound:
		return quarantine.Status{Blocked: true, Detail: "not found through the gate (404)"}, nil
	}
	return quarantine.Status{}, fmt.Errorf("distribution: gate probe of %s: %w", ref, err)
}

// DefaultPrefix is where Move puts quarantined images.
const DefaultPrefix = "quarantine"

// DefaultTagScanLimit bounds the tags Move reads to find those pointing
// at an image before it deletes it.
const DefaultTagScanLimit = 100

// MoveConfig configures Move.
type MoveConfig struct {
	// Prefix: images move to <Prefix>/<repository>; default DefaultPrefix.
	Prefix string
	// Options for every registry call (auth, transport); the context is
	// added.
	Options []remote.Option
	// NameOptions parse references (name.Insecure for plain-HTTP
	// registries other than localhost and private addresses).
	NameOptions []name.Option
	// TagScanLimit: a repository with more tags than this is not scanned
	// for the image's tags; only Ref.Tags are checked. Default
	// DefaultTagScanLimit; negative: no scan.
	TagScanLimit int
}

// Move moves quarantined images to a quarantine repository.
type Move struct {
	prefix  string
	opts    []remote.Option
	nameOpt []name.Option
	scan    int
}

var _ quarantine.Enforcer = (*Move)(nil)

// NewMove checks cfg.
func NewMove(cfg MoveConfig) (*Move, error) {
	m := &Move{prefix: strings.Trim(cfg.Prefix, "/"), opts: cfg.Options, nameOpt: cfg.NameOptions, scan: cfg.TagScanLimit}
	if m.prefix == "" {
		m.prefix = DefaultPrefix
	}
	if _, err := name.NewRepository("example.com/"+m.prefix+"/x", m.nameOpt...); err != nil {
		return nil, fmt.Errorf("distribution: prefix %q: %w", cfg.Prefix, err)
	}
	if m.scan == 0 {
		m.scan = DefaultTagScanLimit
	}
	return m, nil
}

// Name implements quarantine.Enforcer.
func (m *Move) Name() string { return "distribution-move" }

// locations are the image in its repository and its quarantine copy.
type locations struct {
	orig, copy name.Digest
}

func (m *Move) locate(ref quarantine.Ref) (locations, error) {
	if ref.Repository == m.prefix || strings.HasPrefix(ref.Repository, m.prefix+"/") {
		return locations{}, fmt.Errorf("distribution: %s is in the quarantine prefix %s/", ref, m.prefix)
	}
	orig, err := name.NewDigest(ref.Registry+"/"+ref.Repository+"@"+ref.Digest, m.nameOpt...)
	if err != nil {
		return locations{}, fmt.Errorf("distribution: %s: %w", ref, err)
	}
	cp, err := name.NewDigest(ref.Registry+"/"+m.prefix+"/"+ref.Repository+"@"+ref.Digest, m.nameOpt...)
	if err != nil {
		return locations{}, fmt.Errorf("distribution: %s: %w", ref, err)
	}
	return locations{orig: orig, copy: cp}, nil
}

func (m *Move) ropts(ctx context.Context) []remote.Option {
	return append(slices.Clone(m.opts), remote.WithContext(ctx))
}

// copyTag names the quarantine copy: a tag keeps it from garbage
// collection with --delete-untagged. "sha256-<hex>" is a valid tag.
func copyTag(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// Quarantine copies the image into the quarantine repository and deletes
// it from its own. An image already moved (gone from its repository,
// present in quarantine) is a success; a crash between copy and delete
// is repaired by running it again.
func (m *Move) Quarantine(ctx context.Context, ref quarantine.Ref, reason string) (string, error) {
	loc, err := m.locate(ref)
	if err != nil {
		return "", err
	}
	origOK, err := m.exists(ctx, loc.orig)
	if err != nil {
		return "", err
	}
	if !origOK {
		copyOK, err := m.exists(ctx, loc.copy)
		if err != nil {
			return "", err
		}
		if copyOK {
			return fmt.Sprintf("already moved to %s", loc.copy), nil
		}
		return "", fmt.Errorf("distribution: %s: neither the image nor its quarantine copy %s exists", ref, loc.copy)
	}

	// Find the tags first: deleting by digest removes them (v3).
	tags, tagNote := m.tagsOf(ctx, loc.orig, ref.Tags)
	desc, err := m.copy(ctx, loc.orig, loc.copy)
	if err != nil {
		return "", err
	}
	if err := remote.Tag(loc.copy.Context().Tag(copyTag(ref.Digest)), desc, m.ropts(ctx)...); err != nil {
		return "", fmt.Errorf("distribution: tag quarantine copy %s: %w", loc.copy, err)
	}
	if err := remote.Delete(loc.orig, m.ropts(ctx)...); err != nil && statusOf(err) != http.StatusNotFound {
		return "", fmt.Errorf("distribution: delete %s (the copy %s exists): %w", loc.orig, loc.copy, err)
	}
	detail := fmt.Sprintf("moved to %s; deleted from %s", loc.copy, loc.orig.Context())
	if len(tags) > 0 {
		detail += "; original tags: " + strings.Join(tags, ", ")
	}
	if tagNote != "" {
		detail += "; " + tagNote
	}
	if desc.MediaType.IsIndex() {
		detail += "; its child manifests stay in " + loc.orig.Context().String() + " (other indexes may share them)"
	}
	return detail, nil
}

// Release copies the image back, restores Ref.Tags that no other image
// took meanwhile, and deletes the quarantine copy.
func (m *Move) Release(ctx context.Context, ref quarantine.Ref) (string, error) {
	loc, err := m.locate(ref)
	if err != nil {
		return "", err
	}
	copyOK, err := m.exists(ctx, loc.copy)
	if err != nil {
		return "", err
	}
	if !copyOK {
		origOK, err := m.exists(ctx, loc.orig)
		if err != nil {
			return "", err
		}
		if origOK {
			return fmt.Sprintf("already back in %s", loc.orig.Context()), nil
		}
		return "", fmt.Errorf("distribution: %s: neither the image nor its quarantine copy %s exists", ref, loc.copy)
	}
	desc, err := m.copy(ctx, loc.copy, loc.orig)
	if err != nil {
		return "", err
	}
	var restored, kept, taken []string
	for _, t := range ref.Tags {
		tag := loc.orig.Context().Tag(t)
		if t == "" || tag.TagStr() != t {
			continue
		}
		d, err := remote.Head(tag, m.ropts(ctx)...)
		switch {
		case statusOf(err) == http.StatusNotFound:
			if err := remote.Tag(tag, desc, m.ropts(ctx)...); err != nil {
				return "", fmt.Errorf("distribution: restore tag %s: %w", tag, err)
			}
			restored = append(restored, t)
		case err != nil:
			return "", fmt.Errorf("distribution: read tag %s: %w", tag, err)
		case d.Digest.String() == ref.Digest:
			kept = append(kept, t)
		default:
			// A newer image took the tag meanwhile: it stays with it.
			taken = append(taken, t)
		}
	}
	if err := remote.Delete(loc.copy, m.ropts(ctx)...); err != nil && statusOf(err) != http.StatusNotFound {
		return "", fmt.Errorf("distribution: delete quarantine copy %s (the image is back): %w", loc.copy, err)
	}
	detail := fmt.Sprintf("copied back to %s; deleted %s", loc.orig.Context(), loc.copy)
	if len(restored) > 0 {
		detail += "; restored tags " + strings.Join(restored, ", ")
	}
	if len(kept) > 0 {
		detail += "; already tagged " + strings.Join(kept, ", ")
	}
	if len(taken) > 0 {
		detail += "; left alone (now on another image): " + strings.Join(taken, ", ")
	}
	return detail, nil
}

// Status reports where the image is: gone from its repository (blocked,
// with or without a quarantine copy) or still there.
func (m *Move) Status(ctx context.Context, ref quarantine.Ref) (quarantine.Status, error) {
	loc, err := m.locate(ref)
	if err != nil {
		return quarantine.Status{}, err
	}
	origOK, err := m.exists(ctx, loc.orig)
	if err != nil {
		return quarantine.Status{}, err
	}
	copyOK, err := m.exists(ctx, loc.copy)
	if err != nil {
		return quarantine.Status{}, err
	}
	switch {
	case origOK && copyOK:
		return quarantine.Status{Detail: fmt.Sprintf("in %s and in %s (a move or release did not finish)", loc.orig.Context(), loc.copy.Context())}, nil
	case origOK:
		return quarantine.Status{Detail: fmt.Sprintf("in %s", loc.orig.Context())}, nil
	case copyOK:
		return quarantine.Status{Blocked: true, Detail: fmt.Sprintf("moved to %s", loc.copy)}, nil
	}
	return quarantine.Status{Blocked: true, Detail: "in neither " + loc.orig.Context().String() + " nor " + loc.copy.Context().String()}, nil
}

// copy pushes the manifest at from (with its children, for an index) to
// to, by digest. Blobs are mounted from from's repository (go-
// containerregistry mounts the layers of a remote image of the same
// registry) and skipped when already there.
func (m *Move) copy(ctx context.Context, from, to name.Digest) (*remote.Descriptor, error) {
	desc, err := remote.Get(from, m.ropts(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("distribution: read %s: %w", from, err)
	}
	if desc.Digest.String() != from.DigestStr() {
		return nil, fmt.Errorf("distribution: %s answered digest %s", from, desc.Digest)
	}
	if err := remote.Push(to, desc, m.ropts(ctx)...); err != nil {
		return nil, fmt.Errorf("distribution: copy %s to %s: %w", from, to, err)
	}
	return desc, nil
}

// exists HEADs a manifest by digest.
func (m *Move) exists(ctx context.Context, d name.Digest) (bool, error) {
	_, err := remote.Head(d, m.ropts(ctx)...)
	if err == nil {
		return true, nil
	}
	if statusOf(err) == http.StatusNotFound {
		return false, nil
	}
	return false, fmt.Errorf("distribution: HEAD %s: %w", d, err)
}

// tagsOf finds the tags of the repository that point at d: Ref.Tags
// always, every tag when the repository has at most the scan limit. A
// failure to list only leaves a note: the move goes on.
func (m *Move) tagsOf(ctx context.Context, d name.Digest, known []string) (tags []string, note string) {
	candidates := slices.Clone(known)
	if m.scan > 0 {
		all, err := remote.List(d.Context(), m.ropts(ctx)...)
		switch {
		case err != nil:
			note = fmt.Sprintf("tags not listed (%v)", err)
		case len(all) > m.scan:
			note = fmt.Sprintf("%d tags: only the known ones were checked", len(all))
		default:
			candidates = append(candidates, all...)
		}
	}
	sort.Strings(candidates)
	candidates = slices.Compact(candidates)
	for _, t := range candidates {
		tag := d.Context().Tag(t)
		if t == "" || tag.TagStr() != t {
			continue
		}
		desc, err := remote.Head(tag, m.ropts(ctx)...)
		if err == nil && desc.Digest.String() == d.DigestStr() {
			tags = append(tags, t)
		}
	}
	return tags, note
}

// statusOf is the HTTP status of a registry error, 0 for other errors.
func statusOf(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}
