# frozen_string_literal: true

LIGHT = 1
