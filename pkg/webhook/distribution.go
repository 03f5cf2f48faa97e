package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Distribution notification actions.
const (
	actionPush   = "push"
	actionPull   = "pull"
	actionMount  = "mount"
	actionDelete = "delete"
)

// distEnvelope is the notification envelope. Registry 2.x
// (application/vnd.docker.distribution.events.v1+json) and 3.x
// (...events.v2+json) send the same shape. Events are decoded one by one so
// errors can name their index.
type distEnvelope struct {
	Events *[]json.RawMessage `json:"events"`
}

// distEvent holds the fields of a notification event that we read; the
// rest (size, length, references, actor, source, ...) is ignored.
type distEvent struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Action    string `json:"action"`
	Target    struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		Host string `json:"host"`
	} `json:"request"`
}

// ParseDistribution parses a CNCF Distribution notification envelope,
// {"events":[...]}, as sent by registry 2.x and 3.x.
//
// An event with action "push" and a manifest or index target.mediaType (see
// [IsManifestMediaType]) becomes an Event: Registry is the host of
// target.url (request.host when there is no url), Repository is
// target.repository, Digest target.digest, Tag target.tag. Everything else
// is Skipped: blob pushes, schema1 manifest pushes, pulls, mounts, deletes
// and unknown actions.
//
// A body that is not a JSON object with an "events" array, an event that is
// not an object, or a manifest push with an invalid digest, repository, tag,
// registry host or timestamp yields an error wrapping [ErrMalformed]; no
// partial Result is returned then. An empty events array is an empty
// Result.
func ParseDistribution(body []byte) (Result, error) {
	var env distEnvelope
	if err := decodeObject(body, "body", &env); err != nil {
		return Result{}, err
	}
	if env.Events == nil {
		return Result{}, malformed("events", errors.New("missing events array"))
	}
	var res Result
	for i, raw := range *env.Events {
		path := fmt.Sprintf("events[%d]", i)
		var ev distEvent
		if err := decodeObject(raw, path, &ev); err != nil {
			return Result{}, err
		}
		e, reason, err := distributionEvent(&ev, path)
		switch {
		case err != nil:
			return Result{}, err
		case reason != "":
			res.Skipped = append(res.Skipped, Skipped{EventID: skipID(ev.ID), Reason: reason})
		default:
			res.Events = append(res.Events, e)
		}
	}
	return res, nil
}

// distributionEvent turns one notification event into an Event, or a skip
// reason, or an error.
func distributionEvent(ev *distEvent, path string) (Event, string, error) {
	switch ev.Action {
	case actionPush:
	case actionPull, actionMount, actionDelete:
		return Event{}, "action " + ev.Action, nil
	default:
		return Event{}, "unknown action " + quote(ev.Action), nil
	}
	t := &ev.Target
	switch mt := t.MediaType; {
	case IsManifestMediaType(mt):
	case isSchema1MediaType(mt):
		return Event{}, "docker schema1 manifest push (not scannable)", nil
	case isBlobPush(mt, t.URL):
		return Event{}, "blob push", nil
	case mt == "":
		return Event{}, "push without media type", nil
	default:
		return Event{}, "push of unsupported media type " + quote(mt), nil
	}

	if err := checkEventID(ev.ID); err != nil {
		return Event{}, "", malformed(path+".id", err)
	}
	ts, err := parseTime(ev.Timestamp)
	if err != nil {
		return Event{}, "", malformed(path+".timestamp", err)
	}
	var host string
	if t.URL != "" {
		if host, err = urlHost(t.URL); err != nil {
			return Event{}, "", malformed(path+".target.url", err)
		}
	} else {
		if ev.Request.Host == "" {
			return Event{}, "", malformedf(path+".request.host", "missing registry host (target.url and request.host are both empty)")
		}
		host = strings.ToLower(ev.Request.Host)
		if err := checkHost(host); err != nil {
			return Event{}, "", malformed(path+".request.host", err)
		}
	}
	if err := checkRepository(t.Repository); err != nil {
		return Event{}, "", malformed(path+".target.repository", err)
	}
	if err := checkDigest(t.Digest); err != nil {
		return Event{}, "", malformed(path+".target.digest", err)
	}
	if t.Tag != "" {
		if err := checkTag(t.Tag); err != nil {
			return Event{}, "", malformed(path+".target.tag", err)
		}
	}
	return Event{
		Source:     SourceDistribution,
		EventID:    ev.ID,
		Registry:   host,
		Repository: t.Repository,
		Digest:     t.Digest,
		Tag:        t.Tag,
		MediaType:  normalizeMediaType(t.MediaType),
		Timestamp:  ts,
	}, "", nil
}

// isBlobPush reports whether a push event is about a blob: the registry
// stamps blob descriptors application/octet-stream, and blob URLs are
// .../v2/<name>/blobs/<digest>.
func isBlobPush(mediaType, rawURL string) bool {
	if normalizeMediaType(mediaType) == "application/octet-stream" {
		return true
	}
	u, err := url.Parse(rawURL)
	return err == nil && strings.Contains(u.Path, "/blobs/")
}

// urlHost returns the validated, lowercased host[:port] of an absolute
// http(s) URL such as target.url.
func urlHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, which may carry credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("not a valid URL: %v", err)
	}
	if u.User != nil {
		return "", errors.New("URL must not contain userinfo")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("URL %s must be an absolute http or https URL", quote(raw))
	}
	if u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("URL %s has no host", quote(raw))
	}
	host := strings.ToLower(u.Host)
	if err := checkHost(host); err != nil {
		return "", err
	}
	return host, nil
}
