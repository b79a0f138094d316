package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// accountingCollector exports the Ledger's and the database's counters.
type accountingCollector struct{ a *accountant }

func (a *accountant) collector() prometheus.Collector { return accountingCollector{a} }

func accountingDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

var (
	acctUsersDesc      = accountingDesc("accounting_users", "Users the ledger holds.")
	acctTorrentsDesc   = accountingDesc("accounting_torrents", "Torrents the ledger holds, deleted ones included.")
	acctBacklogDesc    = accountingDesc("accounting_backlog_records", "Announces recorded and not yet applied to the database, in memory and in the spool.")
	acctSpooledDesc    = accountingDesc("accounting_spooled_records", "Announces waiting in the spool file.")
	acctAppliedDesc    = accountingDesc("accounting_applied_records_total", "Announces applied to the database.")
	acctBatchesDesc    = accountingDesc("accounting_batches_total", "Batches of announces applied, one transaction each.")
	acctErrorsDesc     = accountingDesc("accounting_flush_errors_total", "Failed applies and spool writes.")
	acctFailingDesc    = accountingDesc("accounting_failing", "1 while the last apply or spool write failed.")
	acctRateDesc       = accountingDesc("accounting_rows_per_second", "Announces applied per second over the last ten seconds or so.")
	acctLastFlushDesc  = accountingDesc("accounting_last_flush_seconds", "How long the last successful apply took.")
	dbCommitsDesc      = accountingDesc("logdb_commits_total", "Syncs of the database's log, each making one or more transactions durable.")
	dbRecordsDesc      = accountingDesc("logdb_records_total", "Announces the database applied since it was opened.")
	dbLogBytesDesc     = accountingDesc("logdb_log_bytes", "Size of the log since the last snapshot: what a start replays.")
	dbSnapshotsDesc    = accountingDesc("logdb_snapshots_total", "Snapshots written since the database was opened.")
	dbSnapBytesDesc    = accountingDesc("logdb_snapshot_bytes", "Size of the last snapshot.")
	dbSnapSecondsDesc  = accountingDesc("logdb_snapshot_seconds", "How long the last snapshot took to write.")
	dbSnapWaitDesc     = accountingDesc("logdb_snapshot_wait_seconds_total", "Time transactions waited for a slow snapshot.")
	dbSnapFailingDesc  = accountingDesc("logdb_snapshot_failing", "1 while the last snapshot failed.")
	dbRowsDesc         = accountingDesc("logdb_rows", "Rows of the database's tables.", "table")
	dbMemoryBytesDesc  = accountingDesc("logdb_memory_bytes", "Memory of the database's tables, outside the Go heap.")
	allAccountingDescs = []*prometheus.Desc{
		acctUsersDesc, acctTorrentsDesc, acctBacklogDesc, acctSpooledDesc, acctAppliedDesc, acctBatchesDesc, acctErrorsDesc,
		acctFailingDesc, acctRateDesc, acctLastFlushDesc, dbCommitsDesc, dbRecordsDesc, dbLogBytesDesc, dbSnapshotsDesc,
		dbSnapBytesDesc, dbSnapSecondsDesc, dbSnapWaitDesc, dbSnapFailingDesc, dbRowsDesc, dbMemoryBytesDesc,
	}
)

func (c accountingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allAccountingDescs {
		ch <- d
	}
}

func (c accountingCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	flag := func(failing bool) float64 {
		if failing {
			return 1
		}
		return 0
	}
	l := c.a.ledger.Stats()
	gauge(acctUsersDesc, float64(l.Users))
	gauge(acctTorrentsDesc, float64(l.Torrents))
	gauge(acctBacklogDesc, float64(l.Backlog))
	gauge(acctSpooledDesc, float64(l.Spooled))
	counter(acctAppliedDesc, float64(l.Applied))
	counter(acctBatchesDesc, float64(l.Batches))
	counter(acctErrorsDesc, float64(l.FlushErrors))
	gauge(acctFailingDesc, flag(l.LastError != nil))
	gauge(acctRateDesc, l.RowsPerSecond)
	gauge(acctLastFlushDesc, l.LastFlush.Seconds())

	d := c.a.db.Stats()
	counter(dbCommitsDesc, float64(d.Commits))
	counter(dbRecordsDesc, float64(d.Records))
	gauge(dbLogBytesDesc, float64(d.LogBytes))
	counter(dbSnapshotsDesc, float64(d.Snapshots))
	gauge(dbSnapBytesDesc, float64(d.SnapshotBytes))
	gauge(dbSnapSecondsDesc, d.SnapshotTime.Seconds())
	counter(dbSnapWaitDesc, d.SnapshotWait.Seconds())
	gauge(dbSnapFailingDesc, flag(d.SnapshotErr != nil))
	for _, t := range []struct {
		name string
		n    int
	}{{"users", d.Users}, {"torrents", d.Torrents}, {"histories", d.Histories}, {"baselines", d.Baselines}} {
		gauge(dbRowsDesc, float64(t.n), t.name)
	}
	gauge(dbMemoryBytesDesc, float64(d.MemoryBytes))
}
