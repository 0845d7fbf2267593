package optlock

import (
	"database/sql/driver"
	"math"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm/schema"
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

type valuerKey int64

func (k valuerKey) Value() (driver.Value, error) { return "K" + strconv.FormatInt(int64(k), 10), nil }

type pointerValuerKey int64

func (k *pointerValuerKey) Value() (driver.Value, error) { return int64(*k) * 10, nil }

// isIntegerKey admits the keys the number forms (literals, arrays, JSON) may send as their Go
// integer: plain integers in integer columns, and nothing that stores something else.
func TestIsIntegerKey(t *testing.T) {
	type model struct {
		Plain        int64
		Unsigned     uint
		Tagged       int64 `gorm:"type:bigint unsigned"`
		TaggedInt    int   `gorm:"type:INT(11)"`
		Serial       int64 `gorm:"type:bigserial"`
		InText       int64 `gorm:"type:varchar(20)"`
		Valuer       valuerKey
		PtrValuer    pointerValuerKey
		Pointer      *int64
		Serialized   int64 `gorm:"serializer:json"`
		NotAnInteger string
	}
	s, err := schema.Parse(&model{}, &sync.Map{}, schema.NamingStrategy{})
	require.NoError(t, err)
	want := map[string]bool{
		"Plain": true, "Unsigned": true, "Tagged": true, "TaggedInt": true, "Serial": true,
		"InText": false, "Valuer": false, "PtrValuer": false, "Pointer": false, "Serialized": false, "NotAnInteger": false,
	}
	for name, integer := range want {
		assert.Equal(t, integer, isIntegerKey(s.LookUpField(name)), name)
	}
}
