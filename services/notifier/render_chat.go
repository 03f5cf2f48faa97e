package notifier

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// Product limits (see README, "Chat alerts").
const (
	slackMaxBlocks      = 50
	slackMaxSectionText = 3000
	slackMaxHeaderText  = 150
	slackMaxFieldText   = 2000
	slackMaxFields      = 10
	// Slack refuses messages whose blocks hold more than about 13,200
	// characters in all (msg_blocks_too_long), a limit it does not
	// document; stay well under it.
	slackMaxBlocksText = 12000

	teamsMaxBytes = 26000 // Teams refuses cards over about 28 KB

	mattermostMaxBytes = 16000 // posts hold 16,383 characters

	discordMaxContent     = 2000
	discordMaxTitle       = 256
	discordMaxDescription = 4096
	discordMaxFields      = 25
	discordMaxFieldName   = 256
	discordMaxFieldValue  = 1024
	discordMaxTotal       = 6000

	googleChatMaxBytes = 32000
)

// renderChat renders v for a chat product.
func renderChat(typ string, v view) ([]byte, error) {
	switch typ {
	case TypeSlack:
		return renderSlack(v)
	case TypeTeams:
		return renderTeams(v)
	case TypeMattermost:
		return renderMattermost(v)
	case TypeDiscord:
		return renderDiscord(v)
	case TypeGoogleChat:
		return renderGoogleChat(v)
	}
	return nil, fmt.Errorf("no chat renderer for type %q", typ)
}

// ---- Slack: Block Kit ----

// slackEscape escapes Slack's control characters: with them a value
// could become a link or an @channel mention (<!channel>).
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

func slackItem(it item) string {
	if it.Vulnerability {
		return fmt.Sprintf("• *%s* %s — %s", slackEscape(it.Severity), slackEscape(it.ID), slackEscape(it.versions()))
	}
	return fmt.Sprintf("• *%s* %s", slackEscape(it.Severity), slackEscape(it.finding()))
}

// renderSlack: a header (the title), a section of fields (the facts), the
// items in sections of at most 3000 characters, a context line "… and N
// more", and a section linking the report. Text is the fallback shown in
// notifications.
func renderSlack(v view) ([]byte, error) {
	var msg *slack.WebhookMessage
	for _, shown := range shownCounts(len(v.Items)) {
		var blocks []slack.Block
		total := 0
		text := func(typ, s string) *slack.TextBlockObject {
			total += utf8.RuneCountInString(s)
			return slack.NewTextBlockObject(typ, s, false, false)
		}
		blocks = append(blocks, slack.NewHeaderBlock(text(slack.PlainTextType, truncate(v.Title, slackMaxHeaderText))))
		var fields []*slack.TextBlockObject
		for _, f := range v.Facts[:min(len(v.Facts), slackMaxFields)] {
			fields = append(fields, text(slack.MarkdownType, truncate("*"+f.Label+"*\n"+slackEscape(f.Value), slackMaxFieldText)))
		}
		blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
		var lines []string
		for _, it := range v.Items[:shown] {
			lines = append(lines, slackItem(it))
		}
		for _, chunk := range chunkLines(lines, slackMaxSectionText) {
			blocks = append(blocks, slack.NewSectionBlock(text(slack.MarkdownType, chunk), nil, nil))
		}
		if rest := len(v.Items) - shown; rest > 0 {
			blocks = append(blocks, slack.NewContextBlock("", text(slack.MarkdownType, more(rest))))
		}
		if v.Link != "" {
			blocks = append(blocks, slack.NewSectionBlock(text(slack.MarkdownType, "<"+slackEscape(v.Link)+"|Open the report>"), nil, nil))
		}
		msg = &slack.WebhookMessage{Text: slackEscape(v.Title), Blocks: &slack.Blocks{BlockSet: blocks}}
		if len(blocks) <= slackMaxBlocks && total <= slackMaxBlocksText {
			break
		}
	}
	return json.Marshal(msg)
}

// chunkLines joins lines with "\n" into chunks of at most max runes; a
// line longer than max is cut.
func chunkLines(lines []string, max int) []string {
	var out []string
	var cur strings.Builder
	n := 0
	for _, l := range lines {
		l = truncate(l, max)
		ln := utf8.RuneCountInString(l)
		if n > 0 && n+1+ln > max {
			out = append(out, cur.String())
			cur.Reset()
			n = 0
		}
		if n > 0 {
			cur.WriteByte('\n')
			n++
		}
		cur.WriteString(l)
		n += ln
	}
	if n > 0 {
		out = append(out, cur.String())
	}
	return out
}

// ---- Markdown products (Teams, Mattermost, Discord) ----

// mdEscape backslash-escapes the Markdown that could turn a value (a
// package name, a finding title) into a link, an autolink or emphasis;
// parentheses alone make no link, so they stay readable.
var mdEscape = strings.NewReplacer(
	`\`, `\\`, "*", `\*`, "_", `\_`, "`", "\\`", "~", `\~`, "[", `\[`, "]", `\]`, "<", `\<`, ">", `\>`,
).Replace

// noMentions breaks @channel, @here, @all and @everyone: Mattermost
// notifies on them in any text (Discord is told not to parse mentions).
var noMentions = strings.NewReplacer("@", "@\u200b").Replace

func mdItem(it item) string {
	if it.Vulnerability {
		return fmt.Sprintf("**%s** %s — %s", mdEscape(it.Severity), mdEscape(it.ID), mdEscape(it.versions()))
	}
	return fmt.Sprintf("**%s** %s", mdEscape(it.Severity), mdEscape(it.finding()))
}

// ---- Microsoft Teams: Adaptive Card 1.4 in the Workflows envelope ----

type teamsEnvelope struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []map[string]any `json:"body"`
	Actions []map[string]any `json:"actions,omitempty"`
	MSTeams map[string]any   `json:"msteams,omitempty"`
}

// renderTeams: a bold TextBlock (the title, coloured by verdict), a
// FactSet (the facts), one TextBlock per item, a subtle "… and N more",
// and an Action.OpenUrl to the report.
func renderTeams(v view) ([]byte, error) {
	color := map[verdictColor]string{colorRed: "Attention", colorAmber: "Warning", colorGreen: "Good"}[v.Color]
	var out []byte
	for _, shown := range shownCounts(len(v.Items)) {
		body := []map[string]any{
			{"type": "TextBlock", "text": mdEscape(v.Title), "weight": "Bolder", "size": "Medium", "wrap": true, "color": color},
		}
		var facts []map[string]string
		for _, f := range v.Facts {
			facts = append(facts, map[string]string{"title": f.Label, "value": mdEscape(f.Value)})
		}
		body = append(body, map[string]any{"type": "FactSet", "facts": facts})
		for i, it := range v.Items[:shown] {
			tb := map[string]any{"type": "TextBlock", "text": mdItem(it), "wrap": true, "spacing": "Small"}
			if i == 0 {
				tb["spacing"] = "Medium"
			}
			body = append(body, tb)
		}
		if rest := len(v.Items) - shown; rest > 0 {
			body = append(body, map[string]any{"type": "TextBlock", "text": more(rest), "isSubtle": true, "wrap": true})
		}
		card := teamsCard{
			Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard", Version: "1.4",
			Body: body, MSTeams: map[string]any{"width": "Full"},
		}
		if v.Link != "" {
			card.Actions = []map[string]any{{"type": "Action.OpenUrl", "title": "Open the report", "url": v.Link}}
		}
		var err error
		out, err = json.Marshal(teamsEnvelope{Type: "message", Attachments: []teamsAttachment{{
			ContentType: "application/vnd.microsoft.card.adaptive", Content: card,
		}}})
		if err != nil {
			return nil, err
		}
		if len(out) <= teamsMaxBytes {
			break
		}
	}
	return out, nil
}

// ---- Mattermost: Slack-style attachments ----

type mattermostMessage struct {
	Text        string                 `json:"text"`
	Attachments []mattermostAttachment `json:"attachments"`
}

type mattermostAttachment struct {
	Fallback  string            `json:"fallback"`
	Color     string            `json:"color"`
	Title     string            `json:"title,omitempty"`
	TitleLink string            `json:"title_link,omitempty"`
	Text      string            `json:"text,omitempty"`
	Fields    []mattermostField `json:"fields"`
	Footer    string            `json:"footer"`
}

type mattermostField struct {
	Short bool   `json:"short"`
	Title string `json:"title"`
	Value string `json:"value"`
}

// renderMattermost: text is the title in bold; one attachment coloured by
// verdict holds the facts as fields, the items as its text (ending with
// "… and N more") and, as its title, a link to the report.
func renderMattermost(v view) ([]byte, error) {
	esc := func(s string) string { return noMentions(mdEscape(s)) }
	var out []byte
	for _, shown := range shownCounts(len(v.Items)) {
		att := mattermostAttachment{Fallback: noMentions(v.Title), Color: v.Color.Hex, Footer: "Customs"}
		if v.Link != "" {
			att.Title, att.TitleLink = "Open the report", v.Link
		}
		for _, f := range v.Facts {
			att.Fields = append(att.Fields, mattermostField{Short: len(f.Value) <= 40, Title: f.Label, Value: esc(f.Value)})
		}
		var lines []string
		for _, it := range v.Items[:shown] {
			lines = append(lines, "- "+noMentions(mdItem(it)))
		}
		if rest := len(v.Items) - shown; rest > 0 {
			lines = append(lines, "_"+more(rest)+"_")
		}
		att.Text = strings.Join(lines, "\n")
		var err error
		out, err = json.Marshal(mattermostMessage{Text: "**" + esc(v.Title) + "**", Attachments: []mattermostAttachment{att}})
		if err != nil {
			return nil, err
		}
		if len(out) <= mattermostMaxBytes {
			break
		}
	}
	return out, nil
}

// ---- Discord: one embed ----

type discordMessage struct {
	Content         string         `json:"content"`
	Embeds          []discordEmbed `json:"embeds"`
	AllowedMentions map[string]any `json:"allowed_mentions"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	URL         string         `json:"url,omitempty"`
	Description string         `json:"description,omitempty"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields"`
	Footer      discordFooter  `json:"footer"`
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordFooter struct {
	Text string `json:"text"`
}

// size is what Discord counts towards an embed's 6000 characters.
func (e discordEmbed) size() int {
	n := utf8.RuneCountInString(e.Title) + utf8.RuneCountInString(e.Description) + utf8.RuneCountInString(e.Footer.Text)
	for _, f := range e.Fields {
		n += utf8.RuneCountInString(f.Name) + utf8.RuneCountInString(f.Value)
	}
	return n
}

// renderDiscord: content is the title (for notifications); one embed,
// coloured by verdict and titled with a link to the report, holds the
// facts as fields and the items as its description, ending with "… and
// N more". Mentions are never parsed.
func renderDiscord(v view) ([]byte, error) {
	var msg discordMessage
	for _, shown := range shownCounts(len(v.Items)) {
		e := discordEmbed{Title: truncate(mdEscape(v.Title), discordMaxTitle), URL: v.Link, Color: v.Color.Int, Footer: discordFooter{Text: "Customs"}}
		for _, f := range v.Facts[:min(len(v.Facts), discordMaxFields)] {
			e.Fields = append(e.Fields, discordField{
				Name: truncate(f.Label, discordMaxFieldName), Value: truncate(mdEscape(f.Value), discordMaxFieldValue),
				Inline: len(f.Value) <= 40,
			})
		}
		var lines []string
		for _, it := range v.Items[:shown] {
			lines = append(lines, "- "+mdItem(it))
		}
		if rest := len(v.Items) - shown; rest > 0 {
			lines = append(lines, "*"+more(rest)+"*")
		}
		e.Description = strings.Join(lines, "\n")
		msg = discordMessage{
			Content: truncate(mdEscape(v.Title), discordMaxContent), Embeds: []discordEmbed{e},
			AllowedMentions: map[string]any{"parse": []string{}},
		}
		if utf8.RuneCountInString(e.Description) <= discordMaxDescription && e.size() <= discordMaxTotal {
			break
		}
	}
	return json.Marshal(msg)
}

// ---- Google Chat: cardsV2 ----

// htmlEscape: Google Chat card text is a subset of HTML.
var htmlEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace

func chatItem(it item, sevColor string) string {
	sev := `<font color="` + sevColor + `"><b>` + htmlEscape(it.Severity) + `</b></font>`
	if it.Vulnerability {
		return sev + " " + htmlEscape(it.ID) + " — " + htmlEscape(it.versions())
	}
	return sev + " " + htmlEscape(it.finding())
}

func severityHex(s string) string {
	switch s {
	case "CRITICAL", "HIGH":
		return colorRed.Hex
	case "MEDIUM":
		return colorAmber.Hex
	}
	return "#5f6368"
}

// renderGoogleChat: one card whose header is the title; a section of
// decoratedText widgets (the facts), a "New items" section with the items
// (severity coloured) and "… and N more", and a button to the report.
func renderGoogleChat(v view) ([]byte, error) {
	var out []byte
	for _, shown := range shownCounts(len(v.Items)) {
		var facts []map[string]any
		for _, f := range v.Facts {
			facts = append(facts, map[string]any{"decoratedText": map[string]any{"topLabel": f.Label, "text": htmlEscape(f.Value), "wrapText": true}})
		}
		sections := []map[string]any{{"widgets": facts}}
		if len(v.Items) > 0 {
			var lines []string
			for _, it := range v.Items[:shown] {
				lines = append(lines, chatItem(it, severityHex(it.Severity)))
			}
			if rest := len(v.Items) - shown; rest > 0 {
				lines = append(lines, "<i>"+more(rest)+"</i>")
			}
			sections = append(sections, map[string]any{"header": "New items", "widgets": []map[string]any{
				{"textParagraph": map[string]any{"text": strings.Join(lines, "<br>")}},
			}})
		}
		if v.Link != "" {
			sections = append(sections, map[string]any{"widgets": []map[string]any{
				{"buttonList": map[string]any{"buttons": []map[string]any{
					{"text": "Open the report", "onClick": map[string]any{"openLink": map[string]any{"url": v.Link}}},
				}}},
			}})
		}
		msg := map[string]any{"cardsV2": []map[string]any{{
			"cardId": "customs-alert",
			"card": map[string]any{
				"header":   map[string]any{"title": v.Title, "subtitle": "Customs"},
				"sections": sections,
			},
		}}}
		var err error
		out, err = json.Marshal(msg)
		if err != nil {
			return nil, err
		}
		if len(out) <= googleChatMaxBytes {
			break
		}
	}
	return out, nil
}
