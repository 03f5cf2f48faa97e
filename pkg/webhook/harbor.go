package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Harbor event types that become Events.
const (
	harborPushArtifact     = "PUSH_ARTIFACT"          // Default format
	harborCEArtifactPushed = "harbor.artifact.pushed" // CloudEvents format
)

// harborPayload covers both Harbor payload formats. Default:
// {type, occur_at, operator, event_data}. CloudEvents (structured mode):
// {specversion, id, type, time, source, data, ...} where data is the
// Default event_data.
type harborPayload struct {
	SpecVersion *string         `json:"specversion"`
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	Time        string          `json:"time"`
	OccurAt     *int64          `json:"occur_at"`
	EventData   json.RawMessage `json:"event_data"`
	Data        json.RawMessage `json:"data"`
}

type harborData struct {
	Resources  []json.RawMessage `json:"resources"`
	Repository *struct {
		RepoFullName string `json:"repo_full_name"`
	} `json:"repository"`
}

type harborResource struct {
	Digest      string `json:"digest"`
	Tag         string `json:"tag"`
	ResourceURL string `json:"resource_url"`
}

// ParseHarbor parses a Harbor webhook payload in the Default format or, when
// the body has a "specversion" member, the CloudEvents 1.0 format.
//
// A PUSH_ARTIFACT (Default) or harbor.artifact.pushed (CloudEvents) payload
// yields one Event per event_data.resources[] (data.resources[]) entry:
// Digest from digest, Registry from the host part of resource_url (before the
// first "/"), Repository from repository.repo_full_name (else parsed from
// resource_url), Tag from tag unless Harbor put the digest there (push by
// digest, Tag ""). Harbor does not say the media type, so MediaType is "".
// EventID is the CloudEvents id; the Default format has none, so it is "".
// Timestamp is occur_at (Default) or time (CloudEvents).
//
// Every other type (PULL_ARTIFACT, DELETE_ARTIFACT, SCANNING_COMPLETED,
// QUOTA_EXCEED, harbor.artifact.pulled, ...) is Skipped with reason
// "harbor event <type>".
func ParseHarbor(body []byte) (Result, error) {
	var p harborPayload
	if err := decodeObject(body, "body", &p); err != nil {
		return Result{}, err
	}
	if p.Type == "" {
		return Result{}, malformed("type", errors.New("missing event type"))
	}

	cloudEvents := p.SpecVersion != nil
	dataPath, data := "event_data", p.EventData
	var eventID string
	var ts time.Time
	if cloudEvents {
		if *p.SpecVersion != "1.0" {
			return Result{}, malformedf("specversion", "unsupported CloudEvents version %s", quote(*p.SpecVersion))
		}
		eventID = p.ID
		if p.Type != harborCEArtifactPushed {
			return skipHarbor(eventID, p.Type), nil
		}
		dataPath, data = "data", p.Data
		if err := checkEventID(p.ID); err != nil {
			return Result{}, malformed("id", err)
		}
		var err error
		if ts, err = parseTime(p.Time); err != nil {
			return Result{}, malformed("time", err)
		}
	} else {
		if p.Type != harborPushArtifact {
			return skipHarbor("", p.Type), nil
		}
		if p.OccurAt != nil {
			ts = time.Unix(*p.OccurAt, 0).UTC()
		}
	}

	if isNull(data) {
		return Result{}, malformed(dataPath, errors.New("missing event data"))
	}
	var d harborData
	if err := decodeObject(data, dataPath, &d); err != nil {
		return Result{}, err
	}
	if len(d.Resources) == 0 {
		return Result{Skipped: []Skipped{{EventID: skipID(eventID), Reason: "harbor " + p.Type + " without resources"}}}, nil
	}
	var repoFullName string
	if d.Repository != nil {
		repoFullName = d.Repository.RepoFullName
	}
	var res Result
	for i, raw := range d.Resources {
		path := fmt.Sprintf("%s.resources[%d]", dataPath, i)
		var r harborResource
		if err := decodeObject(raw, path, &r); err != nil {
			return Result{}, err
		}
		e, err := harborEvent(&r, path, dataPath, repoFullName)
		if err != nil {
			return Result{}, err
		}
		e.EventID, e.Timestamp = eventID, ts
		res.Events = append(res.Events, e)
	}
	return res, nil
}

func skipHarbor(eventID, typ string) Result {
	return Result{Skipped: []Skipped{{EventID: skipID(eventID), Reason: "harbor event " + word(typ)}}}
}

// harborEvent validates one pushed resource.
func harborEvent(r *harborResource, path, dataPath, repoFullName string) (Event, error) {
	if err := checkDigest(r.Digest); err != nil {
		return Event{}, malformed(path+".digest", err)
	}
	// resource_url is "<host>/<repo>:<tag>" or "<host>/<repo>@<digest>",
	// built from Harbor's external URL without its scheme.
	u := r.ResourceURL
	if u == "" {
		return Event{}, malformed(path+".resource_url", errors.New("missing resource_url"))
	}
	if strings.Contains(u, "://") {
		return Event{}, malformedf(path+".resource_url", "%s must not contain a scheme", quote(u))
	}
	host, rest, ok := strings.Cut(u, "/")
	if !ok || rest == "" {
		return Event{}, malformedf(path+".resource_url", "%s has no repository path", quote(u))
	}
	host = strings.ToLower(host)
	if err := checkHost(host); err != nil {
		return Event{}, malformed(path+".resource_url", err)
	}

	repo, repoPath := repoFullName, dataPath+".repository.repo_full_name"
	if repo == "" {
		repo, repoPath = repoFromResourceURL(rest), path+".resource_url"
	}
	if err := checkRepository(repo); err != nil {
		return Event{}, malformed(repoPath, err)
	}

	tag := r.Tag
	if tag == r.Digest || strings.HasPrefix(tag, "sha256:") {
		tag = "" // Harbor puts the digest in tag when the push had no tag
	}
	if tag != "" {
		if err := checkTag(tag); err != nil {
			return Event{}, malformed(path+".tag", err)
		}
	}
	return Event{
		Source:     SourceHarbor,
		Registry:   host,
		Repository: repo,
		Digest:     r.Digest,
		Tag:        tag,
	}, nil
}

// repoFromResourceURL strips "@<digest>" or ":<tag>" from the path part of a
// resource_url.
func repoFromResourceURL(rest string) string {
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		return rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		return rest[:i]
	}
	return rest
}
