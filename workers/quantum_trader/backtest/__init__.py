"""``qt backtest``: the workers' pure decision cores driven over history by a data clock."""
