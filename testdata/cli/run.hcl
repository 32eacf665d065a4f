secret = ["db=database/creds/app"]
on_rotate = "signal"
