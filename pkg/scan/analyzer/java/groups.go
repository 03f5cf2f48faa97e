package java

import "strings"

// Well-known Maven group ids of artifacts that are often shipped without
// pom.properties and whose manifest does not name the group (Spring's
// jars carry only Implementation-Title and Automatic-Module-Name, Tomcat's
// an OSGi name that is not the group): without the group, OSV cannot
// match them. Only groups that do not depend on the version are listed
// (Hibernate and Groovy moved theirs).

// knownGroups maps exact artifact ids to their group.
var knownGroups = map[string]string{
	"guava":                "com.google.guava",
	"gson":                 "com.google.code.gson",
	"protobuf-java":        "com.google.protobuf",
	"snakeyaml":            "org.yaml",
	"log4j":                "log4j",
	"commons-io":           "commons-io",
	"commons-codec":        "commons-codec",
	"commons-logging":      "commons-logging",
	"commons-collections":  "commons-collections",
	"commons-fileupload":   "commons-fileupload",
	"commons-beanutils":    "commons-beanutils",
	"commons-lang":         "commons-lang",
	"commons-lang3":        "org.apache.commons",
	"commons-collections4": "org.apache.commons",
	"commons-compress":     "org.apache.commons",
	"httpclient":           "org.apache.httpcomponents",
	"httpcore":             "org.apache.httpcomponents",
	"httpmime":             "org.apache.httpcomponents",
	"jackson-core":         "com.fasterxml.jackson.core",
	"jackson-databind":     "com.fasterxml.jackson.core",
	"jackson-annotations":  "com.fasterxml.jackson.core",
	"xstream":              "com.thoughtworks.xstream",
	"postgresql":           "org.postgresql",
	"mysql-connector-java": "mysql",
	"mysql-connector-j":    "com.mysql",
	"h2":                   "com.h2database",
	"kafka-clients":        "org.apache.kafka",
	"zookeeper":            "org.apache.zookeeper",
	"freemarker":           "org.freemarker",
	"velocity-engine-core": "org.apache.velocity",
	"reactor-core":         "io.projectreactor",
	"json-smart":           "net.minidev",
	"nimbus-jose-jwt":      "com.nimbusds",
	"okhttp":               "com.squareup.okhttp3",
	"tika-core":            "org.apache.tika",
	"poi":                  "org.apache.poi",
	"poi-ooxml":            "org.apache.poi",
	"snappy-java":          "org.xerial.snappy",
	"kotlin-stdlib":        "org.jetbrains.kotlin",
}

// knownGroupPrefixes maps artifact id prefixes to their group, the
// longest matching prefix first.
var knownGroupPrefixes = []struct{ prefix, group string }{
	{"spring-boot", "org.springframework.boot"},
	{"spring-security-", "org.springframework.security"},
	{"spring-data-", "org.springframework.data"},
	{"spring-cloud-", "org.springframework.cloud"},
	{"spring-kafka", "org.springframework.kafka"},
	{"spring-amqp", "org.springframework.amqp"},
	{"spring-rabbit", "org.springframework.amqp"},
	{"spring-batch-", "org.springframework.batch"},
	{"spring-integration-", "org.springframework.integration"},
	{"spring-session-", "org.springframework.session"},
	{"spring-ws-", "org.springframework.ws"},
	{"spring-hateoas", "org.springframework.hateoas"},
	{"spring-retry", "org.springframework.retry"},
	{"spring-graphql", "org.springframework.graphql"},
	{"spring-ldap-", "org.springframework.ldap"},
	{"spring-vault-", "org.springframework.vault"},
	{"spring-", "org.springframework"}, // spring-core, spring-web, spring-webmvc, spring-context…
	{"tomcat-embed-", "org.apache.tomcat.embed"},
	{"jackson-dataformat-", "com.fasterxml.jackson.dataformat"},
	{"jackson-datatype-", "com.fasterxml.jackson.datatype"},
	{"jackson-module-", "com.fasterxml.jackson.module"},
	{"jackson-jaxrs-", "com.fasterxml.jackson.jaxrs"},
	{"log4j-", "org.apache.logging.log4j"},
	{"logback-", "ch.qos.logback"},
	{"slf4j-", "org.slf4j"},
	{"netty-", "io.netty"},
	{"jetty-", "org.eclipse.jetty"},
	{"undertow-", "io.undertow"},
	{"micrometer-", "io.micrometer"},
	{"grpc-", "io.grpc"},
	{"bcprov-", "org.bouncycastle"},
	{"bcpkix-", "org.bouncycastle"},
	{"bcutil-", "org.bouncycastle"},
	{"shiro-", "org.apache.shiro"},
	{"struts2-", "org.apache.struts"},
	{"camel-", "org.apache.camel"},
	{"cxf-", "org.apache.cxf"},
	{"activemq-", "org.apache.activemq"},
	{"jjwt-", "io.jsonwebtoken"},
}

// knownGroup returns the group of a well-known artifact id, "" when it
// is not one.
func knownGroup(artifact string) string {
	if g, ok := knownGroups[artifact]; ok {
		return g
	}
	for _, p := range knownGroupPrefixes {
		if strings.HasPrefix(artifact, p.prefix) {
			return p.group
		}
	}
	return ""
}
