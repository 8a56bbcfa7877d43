import { defineConfig } from 'vitepress';

/**
 * The Slipway documentation site. Every page is `<section>/index.md`, so every URL is a
 * directory (`/serving/`): the docs CloudFront Function maps directory URLs to
 * `index.html`, and plain S3 objects need no `.html` rewriting. Nothing is fetched
 * from a CDN at runtime; the site is served on an internal distribution.
 */
export default defineConfig({
  title: 'Slipway',
  description: 'Train, publish and serve ONNX models on AWS, and run the whole loop on one machine.',
  lang: 'en-US',
  cleanUrls: true,
  lastUpdated: false,
  head: [['link', { rel: 'icon', href: '/favicon.svg', type: 'image/svg+xml' }]],
  themeConfig: {
    logo: '/favicon.svg',
    search: { provider: 'local' },
    outline: { level: [2, 3] },
    nav: [
      { text: 'Quick start', link: '/quick-start/' },
      { text: 'Deploy to AWS', link: '/deploy/' },
      { text: 'API', link: '/serving/' },
      { text: 'Runbooks', link: '/operations/' },
    ],
    sidebar: [
      {
        text: 'Introduction',
        items: [
          { text: 'Architecture', link: '/architecture/' },
          { text: 'Quick start', link: '/quick-start/' },
          { text: 'The local twin', link: '/local-twin/' },
        ],
      },
      {
        text: 'On AWS',
        items: [
          { text: 'Deploying step by step', link: '/deploy/' },
          { text: 'CI/CD workflows', link: '/ci-cd/' },
          { text: 'Security model', link: '/security/' },
          { text: 'Cost of an idle deployment', link: '/cost/' },
        ],
      },
      {
        text: 'Models',
        items: [
          { text: 'Training', link: '/training/' },
          { text: 'Serving API reference', link: '/serving/' },
        ],
      },
      {
        text: 'Operations',
        items: [{ text: 'Runbooks', link: '/operations/' }],
      },
    ],
    footer: { message: 'Internal documentation. Apache-2.0.' },
  },
});
