# The leaking app that examples/leaky_app.rb (three dumps in one run) and
# examples/leaky_service.rb (a long-running service for `heapscope run`) share.
#
# Every request allocates short-lived garbage (params, headers, a rendered
# body), goes through a bounded LRU cache (old entries are evicted, so the
# cache does not leak), and -- the bug -- appends a LeakedEntry and its note
# String to RequestLog::ENTRIES, a class-level array that is never cleared.

CACHE_ENTRIES = 500

# A least-recently-used cache with a fixed number of entries.
class LruCache
  def initialize(max_entries)
    @max_entries = max_entries
    @store = {}
  end

  def fetch(key)
    if @store.key?(key)
      value = @store.delete(key)
      @store[key] = value # move to the most recently used end
    else
      value = yield
      @store[key] = value
      @store.delete(@store.first[0]) if @store.size > @max_entries
    end
    value
  end

  def size
    @store.size
  end
end

class LeakedEntry
  attr_reader :request_id, :note

  def initialize(request_id, note)
    @request_id = request_id
    @note = note
  end
end

# The leak: an append-only, class-level registry.
class RequestLog
  ENTRIES = []

  def self.record(request_id, path)
    note = "#{path} handled as request #{request_id}" # leaked String
    ENTRIES << LeakedEntry.new(request_id, note)      # leaked LeakedEntry
  end
end

User = Struct.new(:id, :name, :email, :roles)
Request = Struct.new(:id, :path, :params, :headers)

class App
  def initialize
    @users = LruCache.new(CACHE_ENTRIES)
  end

  def call(request)
    user_id = request.params["user_id"]
    user = @users.fetch("user:#{user_id}") { load_user(user_id) }
    body = render(user, request)
    RequestLog.record(request.id, request.path)
    [200, { "content-type" => "text/html", "content-length" => body.bytesize.to_s }, [body]]
  end

  private

  def load_user(id)
    User.new(id, "user #{id}", "user#{id}@example.com", %w[reader writer].sample(1))
  end

  def render(user, request)
    rows = request.params.map { |k, v| "<tr><td>#{k}</td><td>#{v}</td></tr>" }
    "<html><body><h1>Hello #{user.name}</h1><table>#{rows.join}</table></body></html>"
  end
end

def handle_requests(app, first_id, count)
  first_id.upto(first_id + count - 1) do |id|
    user_id = (id * 7_919) % 20_000 # spread over many users, so the cache churns
    request = Request.new(
      id,
      "/users/#{user_id}/orders",
      { "user_id" => user_id, "page" => (id % 7).to_s, "sort" => "created_at" },
      { "accept" => "text/html", "x-request-id" => "req-#{id}-#{rand(1 << 30)}" }
    )
    status, _headers, _body = app.call(request)
    raise "request #{id} failed" unless status == 200
  end
  first_id + count
end

