package signals
