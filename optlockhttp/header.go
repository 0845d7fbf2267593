package optlockhttp

import (
	"net/http"
	"strings"
)

// maxHeaderBytes bounds an If-Match or If-None-Match field (all its lines together): a longer one is
// refused before it is parsed.
const maxHeaderBytes = 4096

// maxTags bounds the entity tags one field may list.
const maxTags = 32

// entityTag is one element of an If-Match or If-None-Match list.
type entityTag struct {
	weak bool
	// opaque is the tag with its quotes, without W/.
	opaque string
}

// conditionalField is a parsed If-Match or If-None-Match: absent, "*", or a list of tags.
type conditionalField struct {
	present bool
	any     bool
	tags    []entityTag
}

// parseConditional parses the request's field name as RFC 9110 defines If-Match and If-None-Match:
// "*" or a comma-separated list of entity tags, over one or more lines. A field it cannot parse, or
// one longer than maxHeaderBytes or maxTags, is an error wrapping optlock.ErrInvalidLock.
func parseConditional(r *http.Request, name string) (conditionalField, error) {
	lines := r.Header.Values(name)
	if len(lines) == 0 {
		return conditionalField{}, nil
	}
	size := 0
	for _, l := range lines {
		size += len(l)
	}
	if size > maxHeaderBytes {
		return conditionalField{}, invalidf("%s is %d bytes long, more than %d", name, size, maxHeaderBytes)
	}
	f := conditionalField{present: true}
	for _, line := range lines {
		rest := line
		for {
			rest = strings.TrimLeft(rest, " \t")
			if rest == "" {
				break
			}
			if rest[0] == ',' { // an empty list element
				rest = rest[1:]
				continue
			}
			if rest[0] == '*' {
				f.any = true
				rest = rest[1:]
			} else {
				tag, n, ok := scanTag(rest)
				if !ok {
					return conditionalField{}, invalidf("%s %s is not \"*\" or a list of entity tags", name, quoteShort(line))
				}
				f.tags = append(f.tags, tag)
				rest = rest[n:]
			}
			rest = strings.TrimLeft(rest, " \t")
			if rest != "" && rest[0] != ',' {
				return conditionalField{}, invalidf("%s %s is not \"*\" or a list of entity tags", name, quoteShort(line))
			}
		}
	}
	switch {
	case f.any && len(f.tags) > 0:
		return conditionalField{}, invalidf("%s mixes \"*\" with entity tags", name)
	case !f.any && len(f.tags) == 0:
		return conditionalField{}, invalidf("%s is empty", name)
	case len(f.tags) > maxTags:
		return conditionalField{}, invalidf("%s lists %d entity tags, more than %d", name, len(f.tags), maxTags)
	}
	return f, nil
}

// scanTag reads an entity tag at the start of s: [W/] DQUOTE *etagc DQUOTE, where etagc is any byte
// from 0x21 to 0x7E but the quote, or 0x80 and above. It returns the tag and its length.
func scanTag(s string) (entityTag, int, bool) {
	var t entityTag
	start := 0
	if strings.HasPrefix(s, "W/") {
		t.weak, start = true, 2
	}
	if len(s) <= start || s[start] != '"' {
		return t, 0, false
	}
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			t.opaque = s[start : i+1]
			return t, i + 1, true
		case c < 0x21 || c == 0x7F:
			return t, 0, false
		}
	}
	return t, 0, false
}

// matchesWeakly reports whether the field lists tag under the weak comparison If-None-Match uses:
// W/"x" and "x" are the same tag there.
func (f conditionalField) matchesWeakly(tag string) bool {
	if f.any {
		return true
	}
	current := strings.TrimPrefix(tag, "W/")
	for _, t := range f.tags {
		if t.opaque == current {
			return true
		}
	}
	return false
}
