package db

import (
	"context"
	"testing"

	"github.com/rqlited/rqlited/command"
)

// BenchmarkApplyInsert and BenchmarkQueryPoint measure the write and read
// paths of one statement, guard included (make bench measures whole nodes).
func BenchmarkApplyInsert(b *testing.B) {
	for _, steps := range []int64{0, DefaultMaxSteps} {
		b.Run(map[bool]string{true: "nolimit", false: "limit"}[steps == 0], func(b *testing.B) {
			d := openWith(b, Config{MaxSteps: steps})
			mustApply(b, d, ModeExecute, stmts("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"))
			req := &command.Request{Statements: []command.Statement{{SQL: "INSERT INTO t(v) VALUES(?)", Parameters: []command.Parameter{{Value: "hello"}}}}}
			b.ResetTimer()
			for b.Loop() {
				if _, err := d.Apply(Env{}, ModeExecute, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkQueryPoint(b *testing.B) {
	d := openWith(b, Config{MaxSteps: DefaultMaxSteps})
	mustApply(b, d, ModeExecute, stmts("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t(v) VALUES('x')"))
	req := &command.Request{Statements: []command.Statement{{SQL: "SELECT v FROM t WHERE id = ?", Parameters: []command.Parameter{{Value: int64(1)}}}}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.Query(context.Background(), ModeQuery, req); err != nil {
			b.Fatal(err)
		}
	}
}
