-- wrk script: POST a 64 KiB body (POST_BYTES overrides the size) to the URL's path
wrk.method = "POST"
wrk.body = string.rep("x", tonumber(os.getenv("POST_BYTES") or "65536"))
wrk.headers["Content-Type"] = "application/octet-stream"
