# frozen_string_literal: true

require_relative "lib/rails/html/sanitizer/version"

Gem::Specification.new do |spec|
  spec.name          = "rails-html-sanitizer"
  spec.version       = Rails::HTML::Sanitizer::VERSION
  spec.authors       = ["Rafael Mendonça França", "Kasper Timm Hansen", "Mike Dalessio"]
  spec.email         = ["rafaelmfranca@gmail.com", "kaspth@gmail.com", "mike.dalessio@gmail.com"]
  spec.summary       = "This gem is responsible to sanitize HTML fragments in Rails applications."
  spec.homepage      = "https://github.com/rails/rails-html-sanitizer"
  spec.license       = "MIT"
  spec.files         = Dir["lib/**/*", "README.md", "MIT-LICENSE", "CHANGELOG.md"]
  spec.require_paths = ["lib"]

  spec.add_dependency "loofah", "~> 2.21"
  spec.add_dependency "nokogiri", "~> 1.14"
end
