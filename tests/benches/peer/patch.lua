-- wrk's request for the peer benchmark: a PATCH of a new contact each time,
-- the body the other sides send (Dotdigital's v3 contact upsert).
local counter = 0
wrk.method = "PATCH"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic ZGVtby1hcGl1c2VyQGFwaWNvbm5lY3Rvci5jb206ZGVtby1wYXNzd29yZA=="
wrk.body = '{"dataFields":{"NEWSLETTER":true}}'

request = function()
  counter = counter + 1
  local path = string.format("/contacts/v3/email/wrk-%09d%%40example.com?merge-option=overwrite", counter)
  return wrk.format(nil, path)
end
