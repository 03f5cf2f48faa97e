package secrets

import (
	"regexp"

	"github.com/customs-scan/customs/pkg/report"
)

// critical are the rules whose findings are live-looking credentials of
// the most damaging kind: private keys, AWS/GCP/Azure credentials, and
// GitHub/GitLab tokens (the rules match their current, prefixed formats,
// e.g. ghp_…, github_pat_…, glpat-…).
var critical = map[string]bool{
	"private-key":    true,
	"age-secret-key": true,

	"aws-access-token":                       true,
	"aws-secret-access-key":                  true,
	"azure-storage-account-key":              true,
	"aws-amazon-bedrock-api-key-long-lived":  true,
	"aws-amazon-bedrock-api-key-short-lived": true,
	"gcp-api-key":                            true,
	"azure-ad-client-secret":                 true,

	"github-pat":              true,
	"github-fine-grained-pat": true,
	"github-oauth":            true,
	"github-app-token":        true,
	"github-refresh-token":    true,

	"gitlab-pat":                         true,
	"gitlab-pat-routable":                true,
	"gitlab-ptt":                         true,
	"gitlab-rrt":                         true,
	"gitlab-deploy-token":                true,
	"gitlab-runner-authentication-token": true,
	"gitlab-runner-authentication-token-routable": true,
	"gitlab-oauth-app-secret":                     true,
	"gitlab-cicd-job-token":                       true,
	"gitlab-kubernetes-agent-token":               true,
	"gitlab-scim-token":                           true,
	"gitlab-session-cookie":                       true,
}

// Severity returns the severity of a finding of rule id (a gitleaks id,
// or one of the refinements): CRITICAL for private keys, AWS/GCP/Azure
// credentials and GitHub/GitLab tokens (see critical), MEDIUM for generic-api-key (a keyword next to a
// high-entropy value: often a false positive), HIGH for every other rule
// (a recognisable token of a specific service).
func Severity(id string) string {
	switch {
	case critical[id]:
		return report.SeverityCritical
	case id == "generic-api-key":
		return report.SeverityMedium
	}
	return report.SeverityHigh
}

func severityOf(id string) string { return Severity(id) }

// refinement renames a generic-api-key finding whose key name and value
// have the exact shape of a cloud credential gitleaks has no rule for.
type refinement struct {
	id, desc string
	name     *regexp.Regexp // the text of the match before the secret
	secret   *regexp.Regexp
}

var refinements = []refinement{
	{
		id:     "aws-secret-access-key",
		desc:   "Found an AWS secret access key, which with its access key id gives access to the AWS account.",
		name:   regexp.MustCompile(`(?i)aws_?secret_?(?:access_?)?key`),
		secret: regexp.MustCompile(`^[A-Za-z0-9/+]{40}$`),
	},
	{
		id:     "azure-storage-account-key",
		desc:   "Found an Azure storage account key, which gives full access to the storage account.",
		name:   regexp.MustCompile(`(?i)accountkey`),
		secret: regexp.MustCompile(`^[A-Za-z0-9/+]{86}==$`),
	},
}

// refine returns the rule id, description and severity of c, with
// generic-api-key findings renamed by refinements.
func refine(data []byte, c *candidate) (id, desc, severity string) {
	if c.r.id == "generic-api-key" {
		name := data[c.matchStart:c.secretStart]
		for _, rf := range refinements {
			if rf.name.Match(name) && rf.secret.MatchString(c.secret) {
				return rf.id, rf.desc, Severity(rf.id)
			}
		}
	}
	return c.r.id, c.r.desc, c.r.severity
}
