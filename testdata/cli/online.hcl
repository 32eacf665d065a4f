online = true
