package optlock

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

type namedKey uint16

func TestAppendIntLiteral(t *testing.T) {
	cases := []struct {
		value any
		want  string
	}{
		{int64(math.MinInt64), "-9223372036854775808"},
		{int64(math.MaxInt64), "9223372036854775807"},
		{uint64(math.MaxUint64), "18446744073709551615"},
		{uint(1 << 63), "9223372036854775808"},
		{-7, "-7"},
		{int8(-128), "-128"},
		{int32(math.MaxInt32), "2147483647"},
		{uint32(math.MaxUint32), "4294967295"},
		{namedKey(65535), "65535"},
		{0, "0"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, string(appendIntLiteral(nil, c.value)), "%T %v", c.value, c.value)
	}
}
