# frozen_string_literal: true

require_relative "fill"
ReqMemFill.fill(30)
require_relative "nested_b"
require "shared"
