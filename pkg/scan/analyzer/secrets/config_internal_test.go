package secrets

import "testing"

func TestSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"DB_PASSWORD": true, "MYSQL_ROOT_PASSWORD": true, "POSTGRES_PASSWORD": true, "REDIS_PASS": true,
		"NPM_TOKEN": true, "GITHUB_TOKEN": true, "JWT_SECRET": true, "CLIENT_SECRET": true,
		"SECRET_KEY_BASE": true, "AWS_SECRET_ACCESS_KEY": true, "MINIO_SECRET_KEY": true, "API_KEY": true,
		"STRIPE_API_KEY": true, "APIKEY": true, "APP_KEY": true, "PRIVATE_KEY": true, "NPM_AUTH": true,
		"dbPassword": true, "com.example.db.password": true, "com.example.api-token": true,
		"SMTP_PASSWD": true, "VAULT_TOKEN": true, "PASSPHRASE": true,
		// Not values of secrets.
		"GPG_KEY": false, "KEY": false, "AWS_ACCESS_KEY_ID": false, "MINIO_ACCESS_KEY": false,
		"PASSWORD_FILE": false, "API_KEY_FILE": false, "TOKEN_URL": false, "AUTH_URL": false,
		"SECRET_NAME": false, "PASSWORD_MIN_LENGTH": false, "MYSQL_ALLOW_EMPTY_PASSWORD": false,
		"MYSQL_RANDOM_ROOT_PASSWORD": false, "NO_PASSWORD": false, "PATH": false, "LANG": false,
		"PYTHON_SHA256": false, "TOKEN_TTL": false, "DB_USER": false, "PASSWORD_HASH": false,
		"org.opencontainers.image.source": false,
	} {
		if got := secretName(name); got != want {
			t.Errorf("secretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestLiteralSecret(t *testing.T) {
	for value, want := range map[string]bool{
		"root": true, "hunter2hunter": true, "Sup3r-s3cret-pw": true, `"quoted-s3cret"`: true, "m41l-p4ss!": true,
		// Placeholders, references, flags.
		"": false, "abc": false, "changeme": false, "CHANGE_ME": false, "change-me-please": false,
		"password": false, "secret": false, "${DB_PASSWORD}": false, "$DB_PASSWORD": false,
		"$(cat /run/secrets/x)": false, "{{ .Values.password }}": false, "<your password>": false,
		"xxxxxxxx": false, "********": false, "00000000": false, "/run/secrets/db": false,
		"./secrets/db": false, "file:/etc/x": false, "vault:secret/data/app#pw": false,
		"arn:aws:secretsmanager:eu-west-1:123:secret:db": false, "op://vault/item/field": false,
		"your-api-key-here": false, "insert-token-here": false, "true": false, "yes": false,
		"null": false, "example": false, "%(password)s": false, "aaaaaaa": false, "db_password": false,
	} {
		if got := literalSecret("DB_PASSWORD", value); got != want {
			t.Errorf("literalSecret(DB_PASSWORD, %q) = %v, want %v", value, got, want)
		}
	}
}

func TestBuildArgs(t *testing.T) {
	for createdBy, want := range map[string]string{
		"RUN |2 A=1 TOKEN=abc /bin/sh -c make # buildkit": "A=1 TOKEN=abc",
		"|1 NPM_TOKEN=npm_x /bin/sh -c npm ci":            "NPM_TOKEN=npm_x",
		"ARG DB_PASSWORD=s3cret":                          "DB_PASSWORD=s3cret",
		"/bin/sh -c #(nop)  ARG DB_PASSWORD=s3cret":       "DB_PASSWORD=s3cret",
		"ARG NO_DEFAULT":                                  "",
		"RUN /bin/sh -c echo |2 A=1":                      "",
		"RUN |x A=1 /bin/sh -c make":                      "",
	} {
		var got string
		for _, kv := range buildArgs(createdBy) {
			if got != "" {
				got += " "
			}
			got += kv[0] + "=" + kv[1]
		}
		if got != want {
			t.Errorf("buildArgs(%q) = %q, want %q", createdBy, got, want)
		}
	}
}
