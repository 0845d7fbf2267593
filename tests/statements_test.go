package tests

import (
	"context"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// statementLog records the statements GORM and the plugin send, by their first keyword. GORM does
// not log BEGIN and COMMIT, so those are not counted.
type statementLog struct {
	logger.Interface
	mu   sync.Mutex
	sqls []string
}

func (l *statementLog) LogMode(logger.LogLevel) logger.Interface { return l }

func (l *statementLog) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	sql, _ := fc()
	l.mu.Lock()
	l.sqls = append(l.sqls, sql)
	l.mu.Unlock()
}

// count returns how many recorded statements start with keyword (case-insensitive).
func (l *statementLog) count(keyword string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.sqls {
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), keyword) {
			n++
		}
	}
	return n
}

// find returns the first recorded statement that starts with keyword (case-insensitive), or "".
func (l *statementLog) find(keyword string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.sqls {
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), keyword) {
			return s
		}
	}
	return ""
}

// recording returns a session of db whose statements are recorded in the returned log.
func recording(db *gorm.DB) (*gorm.DB, *statementLog) {
	log := &statementLog{Interface: logger.Discard}
	return db.Session(&gorm.Session{Logger: log}), log
}
