package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
)

// decodeObject unmarshals data, which must be one JSON object, into v (a
// pointer to a struct). path names data in error messages ("body",
// "events[3]"); JSON errors are turned into ErrMalformed errors naming the
// offending field.
func decodeObject(data []byte, path string, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return malformedf(path, "invalid JSON at byte %d: %v", syn.Offset, syn)
		case errors.As(err, &typ):
			field := path
			if typ.Field != "" {
				field = path + "." + typ.Field
				if path == "body" {
					field = typ.Field
				}
			}
			return malformedf(field, "got a JSON %s, want %s", typ.Value, jsonKind(typ.Type))
		default:
			return malformed(path, err)
		}
	}
	if k := kindOf(data); k != "object" {
		return malformedf(path, "got a JSON %s, want an object", k)
	}
	return nil
}

// kindOf names the kind of the JSON value in data, which is valid JSON.
func kindOf(data []byte) string {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return "nothing"
	}
	switch data[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 'n':
		return "null"
	case 't', 'f':
		return "bool"
	default:
		return "number"
	}
}

// isNull reports whether raw is absent or the JSON literal null.
func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || kindOf(raw) == "null"
}

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		if t == reflect.TypeFor[json.RawMessage]() {
			return "a JSON value"
		}
		return "an array"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a bool"
	}
	return t.String()
}
