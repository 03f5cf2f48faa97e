package webhook

import (
	"errors"
	"fmt"
	"strings"
)

// ecrEvent is an Amazon EventBridge event from source aws.ecr, as an
// EventBridge API destination delivers it (the event JSON itself is the
// body).
type ecrEvent struct {
	ID         string  `json:"id"`
	DetailType *string `json:"detail-type"`
	Source     string  `json:"source"`
	Account    string  `json:"account"`
	Region     string  `json:"region"`
	Time       string  `json:"time"`
	Detail     *struct {
		Result            string `json:"result"`
		ActionType        string `json:"action-type"`
		RepositoryName    string `json:"repository-name"`
		ImageDigest       string `json:"image-digest"`
		ImageTag          string `json:"image-tag"`
		ManifestMediaType string `json:"manifest-media-type"`
	} `json:"detail"`
}

// ParseECR parses an Amazon EventBridge event delivered by an API
// destination.
//
// An "ECR Image Action" event from source "aws.ecr" with detail.action-type
// PUSH and detail.result SUCCESS becomes one Event: Registry is
// <account>.dkr.ecr.<region>.amazonaws.com (amazonaws.com.cn for cn-*
// regions), Repository detail.repository-name, Digest detail.image-digest,
// Tag detail.image-tag, MediaType detail.manifest-media-type when present.
// Other results ("ecr result FAILURE"), other actions ("ecr action DELETE"),
// other detail-types and other sources are Skipped.
func ParseECR(body []byte) (Result, error) {
	var ev ecrEvent
	if err := decodeObject(body, "body", &ev); err != nil {
		return Result{}, err
	}
	if ev.DetailType == nil || *ev.DetailType == "" {
		return Result{}, malformed("detail-type", errors.New("missing detail-type"))
	}
	skip := func(reason string) (Result, error) {
		return Result{Skipped: []Skipped{{EventID: skipID(ev.ID), Reason: reason}}}, nil
	}
	if ev.Source != "aws.ecr" {
		return skip("ecr source " + word(ev.Source))
	}
	if *ev.DetailType != "ECR Image Action" {
		return skip("ecr detail-type " + word(*ev.DetailType))
	}
	d := ev.Detail
	if d == nil {
		return Result{}, malformed("detail", errors.New("missing detail"))
	}
	if d.Result != "SUCCESS" {
		return skip("ecr result " + word(d.Result))
	}
	if d.ActionType != "PUSH" {
		return skip("ecr action " + word(d.ActionType))
	}
	mt := d.ManifestMediaType
	switch {
	case mt == "" || IsManifestMediaType(mt):
	case isSchema1MediaType(mt):
		return skip("docker schema1 manifest push (not scannable)")
	default:
		return skip("push of unsupported media type " + quote(mt))
	}

	if err := checkEventID(ev.ID); err != nil {
		return Result{}, malformed("id", err)
	}
	ts, err := parseTime(ev.Time)
	if err != nil {
		return Result{}, malformed("time", err)
	}
	if !isAWSAccount(ev.Account) {
		return Result{}, malformedf("account", "%s is not a 12-digit AWS account id", quote(ev.Account))
	}
	if !isAWSRegion(ev.Region) {
		return Result{}, malformedf("region", "%s is not an AWS region name", quote(ev.Region))
	}
	host := fmt.Sprintf("%s.dkr.ecr.%s.amazonaws.com", ev.Account, ev.Region)
	if strings.HasPrefix(ev.Region, "cn-") {
		host += ".cn"
	}
	if err := checkHost(host); err != nil {
		return Result{}, malformed("region", err)
	}
	if err := checkRepository(d.RepositoryName); err != nil {
		return Result{}, malformed("detail.repository-name", err)
	}
	if err := checkDigest(d.ImageDigest); err != nil {
		return Result{}, malformed("detail.image-digest", err)
	}
	if d.ImageTag != "" {
		if err := checkTag(d.ImageTag); err != nil {
			return Result{}, malformed("detail.image-tag", err)
		}
	}
	return Result{Events: []Event{{
		Source:     SourceECR,
		EventID:    ev.ID,
		Registry:   host,
		Repository: d.RepositoryName,
		Digest:     d.ImageDigest,
		Tag:        d.ImageTag,
		MediaType:  normalizeMediaType(mt),
		Timestamp:  ts,
	}}}, nil
}

func isAWSAccount(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isAWSRegion accepts names like us-west-2, eu-central-1, us-gov-west-1,
// ap-southeast-4: two lowercase letters, one or more "-word" parts and a
// final "-<number>".
func isAWSRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 || len(s) > 32 {
		return false
	}
	for i, p := range parts {
		if p == "" {
			return false
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			last := i == len(parts)-1
			if last && (c < '0' || c > '9') || !last && (c < 'a' || c > 'z') {
				return false
			}
		}
	}
	return len(parts[0]) == 2
}
