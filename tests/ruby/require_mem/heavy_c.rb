# frozen_string_literal: true

ReqMemFill.fill(15)
require_relative "shared"
